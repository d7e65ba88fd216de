"""build_model's validation: every bad argument is a ConfigError naming option, value, rule."""

from __future__ import annotations

import re

import pytest

from elman.errors import ConfigError
from elman.models import GRU, LSTM, RNN, TCN, Elman, build_model, model_config, model_name
from elman.models.base import SequenceModel


def _build(name: str = "gru", **kw):
    args = {"input_size": 2, "output_size": 1, **kw}
    return build_model(name, **args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "lstn"},
         "unknown model 'lstn'; choose one of: elman, esrnn, gru, lstm, rnn, tcn"),
        ({"name": 3}, "unknown model 3; choose one of: elman, esrnn, gru, lstm, rnn, tcn"),
        ({"input_size": 0}, "input_size (0) must be >= 1"),
        ({"output_size": -2}, "output_size (-2) must be >= 1"),
        ({"hidden_size": 0}, "hidden_size (0) must be >= 1"),
        ({"hidden_size": 2.5}, "hidden_size (2.5) must be an integer >= 1"),
        ({"hidden_size": True}, "hidden_size (True) must be an integer >= 1"),
        ({"num_layers": 0}, "num_layers (0) must be >= 1"),
        ({"num_layers": "2"}, "num_layers ('2') must be an integer >= 1"),
        ({"dropout": 1.5}, "dropout (1.5) must be in [0, 1)"),
        ({"dropout": 1.0}, "dropout (1.0) must be in [0, 1)"),
        ({"dropout": -0.1}, "dropout (-0.1) must be in [0, 1)"),
        ({"dropout": float("nan")}, "dropout (nan) must be in [0, 1)"),
        ({"dropout": "0.1"}, "dropout ('0.1') must be in [0, 1)"),
        ({"name": "rnn", "nonlinearity": "sigmoid"},
         "nonlinearity ('sigmoid') must be one of: relu, tanh"),
        ({"name": "tcn", "kernel_size": 1}, "kernel_size (1) must be >= 2"),
        ({"name": "tcn", "kernel_size": 3.0}, "kernel_size (3.0) must be an integer >= 2"),
        ({"name": "elman", "bias": "yes"}, "bias ('yes') must be true or false"),
        ({"name": "elman", "fused": 1}, "fused (1) must be true or false"),
        ({"name": "gru", "fused": None}, "fused (None) must be true or false"),
        ({"name": "rnn", "kernel_size": 3},
         "unknown option 'kernel_size' for model 'rnn'; valid options: fused, nonlinearity"),
        ({"name": "lstm", "bias": True},
         "unknown option 'bias' for model 'lstm'; valid options: fused"),
        ({"name": "lstm", "fused": "no"}, "fused ('no') must be true or false"),
        ({"name": "elman", "nonlinearity": "relu"},
         "unknown option 'nonlinearity' for model 'elman'; valid options: bias, fused"),
    ],
)  # fmt: skip
def test_bad_argument_raises_config_error_with_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        _build(**kwargs)


@pytest.mark.parametrize(
    ("name", "cls"), [("elman", Elman), ("gru", GRU), ("lstm", LSTM), ("rnn", RNN), ("tcn", TCN)]
)
def test_build_model_returns_the_registered_class(name: str, cls: type) -> None:
    assert type(_build(name)) is cls


def test_model_names_are_case_insensitive() -> None:
    assert type(_build(" LSTM ")) is LSTM


def test_extra_options_reach_the_model() -> None:
    assert _build("rnn", nonlinearity="relu").rnn.nonlinearity == "relu"
    assert _build("tcn", kernel_size=5, num_layers=2).receptive_field == 1 + 2 * 4 * 3
    assert not _build("elman", bias=False).head.bias
    assert _build("gru", fused=False).fused is False


def test_build_model_defaults() -> None:
    cfg = model_config(_build("lstm"))
    assert cfg == {"name": "lstm", "input_size": 2, "output_size": 1, "hidden_size": 64,
                   "num_layers": 1, "dropout": 0.0, "fused": True}  # fmt: skip


def test_elman_without_bias_has_no_bias_parameters() -> None:
    model = _build("elman", bias=False, num_layers=2)
    assert not [n for n, _ in model.named_parameters() if "bias" in n]
    assert model_config(model)["bias"] is False


def test_model_config_of_unregistered_class_raises() -> None:
    class Custom(SequenceModel):
        pass

    with pytest.raises(ConfigError, match=r"^model class 'Custom' is not registered; "):
        model_name(Custom())


def test_model_config_values_are_plain_python() -> None:
    cfg = model_config(_build("tcn", dropout=0.1))
    assert all(isinstance(v, (str, int, float, bool)) for v in cfg.values())


def test_the_torch_free_model_names_match_the_registry():
    """The CLI offers config.MODEL_NAMES without importing torch; they must be the registry's."""
    from elman.config import MODEL_NAMES
    from elman.models.registry import available

    assert tuple(MODEL_NAMES) == tuple(available())
