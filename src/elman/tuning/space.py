"""The search space of ``elman tune``: which options a trial varies, and over what range.

Each model type has a default space (:func:`default_space`) whose ranges always hold the
configuration the search starts from, so trial 0 (the defaults) lies inside it. A TOML
file (``--space FILE``) narrows or replaces it::

    replace = false          # true: search only the parameters in this file

    lookback = [12, 24, 36]  # a list: these values (and the configuration's own)
    dropout = 0.1            # one value: fixed (not searched), for trial 0 too

    [hidden_size]            # a range; log = true samples it on a log scale (trial 0
    low = 16                 # keeps the configuration's own value, with a warning
    high = 128               # when the range leaves it out)
    log = true

    [strategy]
    choices = ["direct", "recursive"]

Every parameter is an option of ``elman train`` under its own name; the file is checked
before anything trains, and a mistake ends in one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elman.config import (
    LAYER_DROPOUT_MODELS,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    ensemble_members,
)
from elman.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if typing.TYPE_CHECKING:
    import optuna

# Options a trial may vary (an option of elman train each); the rest stay as configured.
TUNABLE = (
    "lookback",
    "norm",
    "scaler",
    "hidden_size",
    "num_layers",
    "dropout",
    "strategy",
    "highway",
    "lr",
    "weight_decay",
    "loss",
    "batch_size",
    "optimizer",
    "scheduler",
    "clip",
    "patience",
    "teacher_forcing",
    "ensemble",
)
RANGE_KEYS = ("low", "high", "log", "choices")
# The order in which the defaults' neighbours are tried (the others follow, in space order):
# the network alone against the ensemble first, then the step size and the input window,
# then capacity, then the loss and the regularisers.
NEIGHBOUR_ORDER = (
    "ensemble", "lr", "lookback", "hidden_size", "loss", "weight_decay", "strategy", "dropout",
    "num_layers",
)  # fmt: skip
STEPS = 4  # a neighbour of a range parameter lies a quarter of the range away
OUT_OF_RANGE = r"Fixed parameter .* is out of range"  # Optuna's warning on such a trial 0


def _hint(name: str) -> Any:
    for klass in (DataConfig, ModelConfig, TrainConfig):
        hints = typing.get_type_hints(klass)
        if name in hints:
            tp = hints[name]
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            return args[0] if args else tp
    raise KeyError(name)  # pragma: no cover - TUNABLE holds config fields only


@dataclass(frozen=True)
class Param:
    """One searched option: a range ``[low, high]`` (``log`` scale) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def integer(self) -> bool:
        return _hint(self.name) is int

    def suggest(self, trial: optuna.Trial) -> Any:
        """The value of this parameter in ``trial``."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def steps(self, value: Any) -> list[Any]:
        """The values a step away from ``value``: up first, then down (for a list of choices
        of numbers, the next higher and lower choice; otherwise the other choices in order).

        A step in a range is a quarter of it (on the log scale for ``log``), kept inside it;
        an integer moves by at least 1.
        """
        if self.choices:
            if value is None or not all(_number(c) for c in self.choices):
                return [c for c in self.choices if c != value]
            ordered = sorted(set(self.choices))
            if value not in ordered:
                return []
            i = ordered.index(value)
            return [ordered[j] for j in (i + 1, i - 1) if 0 <= j < len(ordered)]
        if not _number(value):  # an unset option (e.g. no --clip): no step from it
            return []
        assert self.low is not None and self.high is not None
        low, high = float(self.low), float(self.high)
        found: list[Any] = []
        for sign in (1, -1):
            if self.log and value > 0:
                step = (math.log(high) - math.log(low)) / STEPS
                v = math.exp(math.log(value) + sign * step)
            else:
                v = value + sign * (high - low) / STEPS
            if self.integer:
                v = int(round(min(max(v, low), high)))
                if v == value and low <= value + sign <= high:
                    v = int(value + sign)
            else:  # two significant digits, then kept inside the range
                v = min(max(float(f"{v:.2g}"), low), high)
            if v != value and low <= v <= high and v not in found:
                found.append(v)
        return found

    def text(self) -> str:
        """``hidden_size  8 .. 128 (log)`` or ``strategy  direct | recursive``."""
        if self.choices:
            return " | ".join(_show(c) for c in self.choices)
        scale = " (log)" if self.log else ""
        return f"{_show(self.low)} .. {_show(self.high)}{scale}"

    def to_dict(self) -> dict[str, Any]:
        if self.choices:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower()


@dataclass(frozen=True)
class SearchSpace:
    """The searched parameters, in a fixed order."""

    params: tuple[Param, ...]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Every parameter's value in ``trial``, by option name. (A default outside a
        ``--space`` range is fixed in trial 0 on purpose; :func:`holding` said so once.)"""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", OUT_OF_RANGE, UserWarning)
            return {p.name: p.suggest(trial) for p in self.params}

    def defaults(self, config: Config) -> dict[str, Any]:
        """The configuration's own value of every searched parameter (trial 0)."""
        flat = {k: v for sec in config.to_dict().values() for k, v in sec.items()}
        return {p.name: flat[p.name] for p in self.params}

    def neighbours(
        self, defaults: dict[str, Any], limit: int, inert: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` configurations that each differ from ``defaults`` in one
        parameter, by one step (:meth:`Param.steps`); none changes a parameter in
        ``inert`` (one that has no effect with the defaults, see :func:`inert`).

        They come in rounds: first one step per parameter (in :data:`NEIGHBOUR_ORDER`),
        then the step the other way. A search tries them right after the defaults, so
        that it measures the changes nearest to the defaults before it samples anywhere.
        """
        rank = {name: i for i, name in enumerate(NEIGHBOUR_ORDER)}
        live = [p for p in self.params if p.name not in inert]
        ordered = sorted(live, key=lambda p: rank.get(p.name, len(rank)))
        steps = [(p.name, p.steps(defaults[p.name])) for p in ordered]
        found: list[dict[str, Any]] = []
        for round_ in range(max((len(s) for _, s in steps), default=0)):
            for name, values in steps:
                if round_ < len(values) and len(found) < limit:
                    found.append({**defaults, name: values[round_]})
        return found

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the study fingerprint and the report)."""
        return {p.name: p.to_dict() for p in self.params}

    def lines(self) -> list[str]:
        """One line per parameter, for printing at the start of a search."""
        width = max((len(p.name) for p in self.params), default=0)
        return [f"{p.name.ljust(width)}  {p.text()}" for p in self.params]


def inert(config: Config) -> tuple[str, ...]:
    """Options that change nothing in ``config`` alone, so that a neighbour changing only
    one of them would train the defaults again: dropout between the layers of a one-layer
    recurrent network, and teacher forcing, which only the recursive strategy uses."""
    found = []
    if config.model.num_layers == 1 and config.model.model in LAYER_DROPOUT_MODELS:
        found.append("dropout")
    if config.model.strategy != "recursive":
        found.append("teacher_forcing")
    return tuple(found)


def holding(space: SearchSpace, config: Config, path: str | Path) -> tuple[SearchSpace, Config]:
    """A space from the ``--space`` file ``path`` made to hold ``config`` (trial 0): a
    parameter with one value becomes ``config``'s own (fixed for every trial, the defaults
    included), and a list of several values gains ``config``'s value when it lacks it.

    A range is kept as the file gives it. When it leaves out ``config``'s value, trial 0
    still runs that value (the defaults are always trial 0), and a warning names the file,
    the parameter and the value.
    """
    fixed = {p.name: p.choices[0] for p in space.params if len(p.choices) == 1}
    config = config.replace(**fixed) if fixed else config
    params = tuple(_holding(p, config) if len(p.choices) > 1 else p for p in space.params)
    found = SearchSpace(params)
    own = found.defaults(config)
    for p in params:
        value = own[p.name]
        if p.choices or not _number(value):
            continue
        assert p.low is not None and p.high is not None
        if not p.low <= value <= p.high:
            warnings.warn(
                f"{path}: [{p.name}] {p.text()} leaves out the default {_show(value)}; trial 0 "
                f"runs the defaults with it anyway, the other trials search the range (widen "
                f"it to search around the defaults)",
                stacklevel=2,
            )
    return found, config


def default_space(config: Config, lookback: int, max_lookback: int) -> SearchSpace:
    """The default search space for ``config.model.model``, holding ``config`` itself.

    Args:
        config: the configuration the search starts from (trial 0).
        lookback: the lookback ``config`` resolves to on this data.
        max_lookback: the longest lookback the shortest series' training part allows.

    The lookback is searched over multiples of the season (1 to 4 seasons) and of the
    horizon (1 to 3 horizons), as far as the data allows; the rest are ranges around the
    defaults that recurrent forecasters use. Weight decay reaches 1e-3 and the loss is
    searched because each changed a shipped dataset's hold-out score by more than its seed
    spread (docs/forecasting.md, under ``--loss``). With an ensemble configured, the search
    also tries the network alone (``ensemble = "none"``): on some data it scores better
    than the ensemble that weighs it (docs/tuning.md).
    """
    season, h = max(int(config.data.season or 1), 1), config.data.horizon
    looks = {lookback}
    looks |= {k * season for k in range(1, 5) if season > 1}
    looks |= {k * h for k in range(1, 4)}
    looks = {v for v in looks if 1 <= v <= max_lookback} | {lookback}
    tcn = config.model.model == "tcn"
    params = [
        Param("lookback", choices=tuple(sorted(looks))),
        Param("hidden_size", 8, 64 if tcn else 128, log=True),
        Param("num_layers", 1, 4 if tcn else 3),
        Param("dropout", 0.0, 0.3),
        Param("lr", 3e-4, 3e-2, log=True),
        Param("weight_decay", choices=(0.0, 1e-5, 1e-4, 1e-3)),
        Param("strategy", choices=("direct", "recursive")),
    ]
    if config.model.model != "esrnn":  # the ES-RNN trains with its own pinball loss
        params.append(Param("loss", choices=("mse", "mae", "huber")))
    if ensemble_members(config.model.ensemble):  # deployed with an ensemble: or without?
        params.append(Param("ensemble", choices=(config.model.ensemble, "none")))
    return SearchSpace(tuple(_holding(p, config) for p in params))


def _holding(param: Param, config: Config) -> Param:
    """``param`` widened just enough to hold the configuration's own value."""
    value = SearchSpace((param,)).defaults(config)[param.name]
    if param.choices:
        if value in param.choices or value is None:
            return param
        return dataclasses.replace(param, choices=(*param.choices, value))
    assert param.low is not None and param.high is not None
    return dataclasses.replace(param, low=min(param.low, value), high=max(param.high, value))


def load_space(path: str | Path, base: SearchSpace, config: Config) -> SearchSpace:
    """``base`` narrowed or replaced by the TOML file ``path`` (see the module notes).

    Raises:
        ConfigError: the file is missing or not TOML, or a key is unknown, of the wrong
            type or out of range; one line naming the file and the key.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"--space '{path}' does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"--space '{path}' is a directory; give a TOML file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--space '{path}' is not valid TOML: {exc}") from exc
    replace = doc.pop("replace", False)
    if not isinstance(replace, bool):
        raise ConfigError(f"{path}: 'replace' = {replace!r} must be true or false")
    given = {name: _param(name, value, path, config) for name, value in doc.items()}
    if not given and replace:
        raise ConfigError(f"{path}: 'replace = true' with no parameters leaves nothing to search")
    kept = [] if replace else [given.pop(p.name, p) for p in base.params]
    return SearchSpace((*kept, *given.values()))


def _param(name: str, value: Any, path: Path, config: Config) -> Param:
    """One parameter of a space file, checked against the option it varies."""
    if name not in TUNABLE:
        raise ConfigError(
            f"{path}: unknown parameter '{name}'; tunable: {', '.join(sorted(TUNABLE))}"
        )
    if isinstance(value, list):
        value = {"choices": value}
    elif not isinstance(value, dict):
        value = {"choices": [value]}
    unknown = sorted(set(value) - set(RANGE_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: [{name}] has unknown key '{unknown[0]}'; use low, high and log, "
            "or choices"
        )
    if "choices" in value:
        return _choices(name, value, path, config)
    return _range(name, value, path, config)


def _choices(name: str, value: dict[str, Any], path: Path, config: Config) -> Param:
    choices = value["choices"]
    if set(value) != {"choices"}:
        raise ConfigError(f"{path}: [{name}] gives choices and a range; give one of them")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{path}: '{name}' choices must be a non-empty list of values")
    for c in choices:
        _check_value(name, c, path, config, "choice")
    return Param(name, choices=tuple(dict.fromkeys(choices)))


def _range(name: str, value: dict[str, Any], path: Path, config: Config) -> Param:
    if "low" not in value or "high" not in value:
        raise ConfigError(f"{path}: [{name}] needs both low and high (or choices = [...])")
    low, high, log = value["low"], value["high"], value.get("log", False)
    tp = _hint(name)
    if tp not in (int, float):
        raise ConfigError(f"{path}: '{name}' is not a number; give choices = [...] instead")
    if not isinstance(log, bool):
        raise ConfigError(f"{path}: [{name}] log = {log!r} must be true or false")
    for key, v in (("low", low), ("high", high)):
        _check_value(name, v, path, config, key)
    if low > high:
        raise ConfigError(f"{path}: [{name}] low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{path}: [{name}] log = true needs low > 0 (got {low})")
    return Param(name, low, high, log=log)


def _check_value(name: str, v: Any, path: Path, config: Config, what: str) -> None:
    """``v`` must be a valid value of the option ``name`` (its type and its rule)."""
    try:
        config.replace(**{name: v})
    except ConfigError as exc:
        raise ConfigError(f"{path}: [{name}] {what} {v!r}: {exc}") from exc
