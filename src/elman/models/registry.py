"""Model names, construction with validated options, and self-describing configs.

::

    model = build_model("gru", input_size=3, output_size=1, hidden_size=32)
    cfg = model_config(model)   # {"name": "gru", "input_size": 3, ..., "fused": True}
    same = build_model(**cfg)   # a checkpoint needs nothing else to rebuild the model

Every invalid argument raises :class:`elman.errors.ConfigError` with a one-line message that
names the option, its value and the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from elman.config import SERIES_MODEL_NAMES
from elman.errors import ConfigError
from elman.models.base import SequenceModel
from elman.models.elman import Elman
from elman.models.esrnn import ESRNN
from elman.models.highway import Highway
from elman.models.recurrent import GRU, LSTM, RNN
from elman.models.tcn import TCN

MODELS: dict[str, type[SequenceModel]] = {
    "elman": Elman,
    "esrnn": ESRNN,
    "gru": GRU,
    "lstm": LSTM,
    "rnn": RNN,
    "tcn": TCN,
}

NONLINEARITIES = ("relu", "tanh")


def _check_bool(option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{option} ({value!r}) must be true or false")
    return value


def _check_nonlinearity(option: str, value: Any) -> str:
    if value not in NONLINEARITIES:
        raise ConfigError(f"{option} ({value!r}) must be one of: {', '.join(NONLINEARITIES)}")
    return str(value)


def _check_int(option: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{option} ({value!r}) must be an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{option} ({value}) must be >= {minimum}")
    return value


def _check_kernel_size(option: str, value: Any) -> int:
    return _check_int(option, value, 2)


def _check_names(option: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{option} ({value!r}) must be a list of names")
    if len(set(value)) != len(value):
        raise ConfigError(f"{option} ({value!r}) names a category twice")
    return list(value)


def _check_dropout(value: Any) -> float:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise ConfigError(f"dropout ({value!r}) must be in [0, 1)")
    return float(value)


# Extra options per model: name -> (default, validator).
_OptionCheck = Callable[[str, Any], Any]
EXTRA_OPTIONS: dict[str, dict[str, tuple[Any, _OptionCheck]]] = {
    "elman": {"bias": (True, _check_bool), "fused": (True, _check_bool)},
    "esrnn": {
        "window": (13, lambda o, v: _check_int(o, v, 1)),
        "season": (1, lambda o, v: _check_int(o, v, 1)),
        "season2": (0, lambda o, v: _check_int(o, v, 0)),
        "n_series": (1, lambda o, v: _check_int(o, v, 1)),
        "n_categories": (0, lambda o, v: _check_int(o, v, 0)),
        "categories": ([], _check_names),
    },
    "gru": {"fused": (True, _check_bool)},
    "lstm": {"fused": (True, _check_bool)},
    "rnn": {"nonlinearity": ("tanh", _check_nonlinearity), "fused": (True, _check_bool)},
    "tcn": {"kernel_size": (3, _check_kernel_size)},
}


# Models that read whole series with per-series parameters instead of windows; they do not
# follow the window interface of SequenceModel (state, hidden_sequence, ONNX, online).
SERIES_MODELS = SERIES_MODEL_NAMES


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def window_models() -> list[str]:
    """The registered models that map input windows to outputs (all but SERIES_MODELS)."""
    return [name for name in available() if name not in SERIES_MODELS]


def _resolve_name(name: Any) -> str:
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(available())}")
    return str(key)


def _check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    spec = EXTRA_OPTIONS[name]
    checked = {}
    for option, value in options.items():
        if option not in spec:
            valid = ", ".join(sorted(spec)) or "none"
            raise ConfigError(
                f"unknown option {option!r} for model {name!r}; valid options: {valid}"
            )
        checked[option] = spec[option][1](option, value)
    return checked


def build_model(
    name: str,
    input_size: int,
    output_size: int,
    hidden_size: int = 64,
    num_layers: int = 1,
    dropout: float = 0.0,
    highway: int = 0,
    highway_inputs: int = 1,
    **options: Any,
) -> SequenceModel:
    """Build a registered model after validating every argument.

    Args:
        name: one of :func:`available` (case-insensitive).
        input_size: features per time step ``I`` (>= 1).
        output_size: outputs per time step ``O`` (>= 1).
        hidden_size: hidden units or channels ``H`` (>= 1).
        num_layers: stacked layers or residual blocks (>= 1).
        dropout: dropout probability in ``[0, 1)``.
        **options: model-specific options: ``bias``, ``fused`` (elman); ``fused`` (gru, lstm);
            ``nonlinearity`` (rnn: ``'tanh'`` or ``'relu'``), ``fused`` (rnn);
            ``kernel_size`` (tcn, >= 2); ``window``, ``season``, ``season2``, ``n_series``,
            ``n_categories`` (esrnn).
        highway: if > 0, wrap the model in a :class:`~elman.models.highway.Highway` that adds
            a linear map of the last ``highway`` steps of the first ``highway_inputs``
            features to the last output step.

    Returns:
        The model; it maps ``[B, L, input_size]`` to ``[B, L, output_size]``.

    Raises:
        ConfigError: an unknown name or option, or a value out of range.
    """
    key = _resolve_name(name)
    kwargs: dict[str, Any] = {
        "input_size": _check_int("input_size", input_size, 1),
        "output_size": _check_int("output_size", output_size, 1),
        "hidden_size": _check_int("hidden_size", hidden_size, 1),
        "num_layers": _check_int("num_layers", num_layers, 1),
        "dropout": _check_dropout(dropout),
    }
    kwargs.update(_check_options(key, options))
    net = MODELS[key](**kwargs)
    if _check_int("highway", highway, 0):
        return Highway(net, highway, _check_int("highway_inputs", highway_inputs, 1))
    return net


# each one is the length of some weight's dimension
SIZE_OPTIONS = ("input_size", "output_size", "hidden_size", "highway", "highway_inputs",
                "kernel_size", "window", "season", "season2", "n_series", "n_categories")


def check_against_shapes(config: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse sizes in a saved ``model_config`` that its weights cannot have, before building.

    A network's sizes show in its weights: each of :data:`SIZE_OPTIONS` is at most the
    largest dimension of any weight, and every layer holds at least one weight. A value
    beyond that (a hand-edited file) would otherwise allocate or loop for ever on building.

    Args:
        config: ``model_config`` as read from a file.
        shapes: the shape of every stored weight of the model.

    Raises:
        ConfigError: naming the option, its value and the bound.
    """
    largest = max((n for shape in shapes.values() for n in shape), default=0)
    for option in SIZE_OPTIONS:
        value = config.get(option)
        if isinstance(value, int) and not isinstance(value, bool) and value > largest:
            raise ConfigError(
                f"{option} ({value}) does not fit the stored weights: none has shape with a "
                f"dimension above {largest}"
            )
    layers = config.get("num_layers")
    if isinstance(layers, int) and not isinstance(layers, bool) and layers > len(shapes):
        raise ConfigError(
            f"num_layers ({layers}) is more than the {len(shapes)} stored weight tensors allow "
            "(a missing tensor for every layer beyond)"
        )


def model_name(model: SequenceModel) -> str:
    """Registered name of a model instance.

    Raises:
        ConfigError: the model's class is not registered.
    """
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ConfigError(
        f"model class {type(model).__name__!r} is not registered; "
        f"registered models: {', '.join(available())}"
    )


def model_config(model: SequenceModel) -> dict[str, Any]:
    """JSON-safe constructor arguments of a model: ``build_model(**model_config(m))`` rebuilds it.

    Args:
        model: an instance of a registered model class.

    Returns:
        ``{"name", "input_size", "output_size", "hidden_size", "num_layers", "dropout"}`` plus
        the model's extra options (see :func:`build_model`).
    """
    if isinstance(model, Highway):
        return {**model_config(model.net), "highway": model.window,
                "highway_inputs": model.n_inputs}
    name = model_name(model)
    cfg: dict[str, Any] = {
        "name": name,
        "input_size": int(model.input_size),
        "output_size": int(model.output_size),
        "hidden_size": int(model.hidden_size),
        "num_layers": int(model.num_layers),
        "dropout": float(getattr(model, "dropout", 0.0)),
    }
    for option in EXTRA_OPTIONS[name]:
        cfg[option] = getattr(model, option)
    return cfg
