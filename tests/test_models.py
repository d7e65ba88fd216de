"""Behaviour every registered model shares, checked for each of them."""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from elman.models import SequenceModel, build_model, model_config
from elman.models.registry import window_models

B, L, N_IN, N_OUT, H = 4, 12, 3, 2, 8
NAMES = window_models()  # the ES-RNN reads whole series: tests/test_esrnn.py


def _model(name: str, seed: int = 0, **kw) -> SequenceModel:
    torch.manual_seed(seed)
    options = {"hidden_size": H, "num_layers": 2, **kw}
    return build_model(name, input_size=N_IN, output_size=N_OUT, **options)


def _x(seed: int = 1, length: int = L, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(B, length, N_IN, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _expected_state_shapes(model: SequenceModel, batch: int) -> list[tuple[int, ...]]:
    if model_config(model)["name"] == "tcn":
        return [(batch, model.receptive_field - 1, N_IN)]  # type: ignore[attr-defined]
    count = 2 if model_config(model)["name"] == "lstm" else 1
    return [(2, batch, H)] * count


def test_registry_lists_the_five_models() -> None:
    assert NAMES == ["elman", "gru", "lstm", "rnn", "tcn"]


@pytest.mark.parametrize("name", NAMES)
def test_output_and_state_shapes(name: str) -> None:
    model = _model(name)
    y, state = model(_x())
    assert y.shape == (B, L, N_OUT)
    assert isinstance(state, tuple)
    assert [tuple(s.shape) for s in state] == _expected_state_shapes(model, B)


@pytest.mark.parametrize("name", NAMES)
def test_init_state_shapes_dtype_and_zeros(name: str) -> None:
    model = _model(name)
    state = model.init_state(5, dtype=torch.float64)
    assert [tuple(s.shape) for s in state] == _expected_state_shapes(model, 5)
    assert all(s.dtype == torch.float64 and not s.any() for s in state)


@pytest.mark.parametrize("name", NAMES)
def test_none_state_means_zero_state(name: str) -> None:
    model = _model(name).eval()
    x = _x()
    assert_close(model(x)[0], model(x, model.init_state(B))[0])


@pytest.mark.parametrize("name", NAMES)
def test_hidden_sequence_shape(name: str) -> None:
    assert _model(name).hidden_sequence(_x()).shape == (B, L, H)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_finite(name: str) -> None:
    y, state = _model(name)(10.0 * _x())
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(s).all() for s in state)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_gradients_reach_every_parameter(name: str, dropout: float) -> None:
    model = _model(name, dropout=dropout).train()
    y, state = model(_x())
    (y.square().mean() + sum(s.square().mean() for s in state)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_chunked_run_with_carried_state_equals_whole_run(name: str) -> None:
    model = _model(name).double().eval()
    x = _x(dtype=torch.float64)
    y_whole, state_whole = model(x)
    state = None
    pieces = []
    for chunk in x.split([5, 1, 6], dim=1):
        y, state = model(chunk, state)
        pieces.append(y)
    assert state is not None
    assert_close(torch.cat(pieces, 1), y_whole)
    for s, s_whole in zip(state, state_whole, strict=True):
        assert_close(s, s_whole)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_builds_same_model_and_outputs(name: str) -> None:
    a, b = _model(name, seed=3), _model(name, seed=3)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb
        assert torch.equal(pa, pb)
    assert torch.equal(a(_x())[0], b(_x())[0])


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_build_different_models(name: str) -> None:
    a, b = _model(name, seed=3), _model(name, seed=4)
    assert not torch.equal(a(_x())[0], b(_x())[0])


@pytest.mark.parametrize("name", NAMES)
def test_model_config_round_trip_through_json(name: str) -> None:
    model = _model(name, dropout=0.25).eval()
    cfg = json.loads(json.dumps(model_config(model)))
    assert cfg["name"] == name
    rebuilt = build_model(**cfg).eval()
    assert model_config(rebuilt) == cfg
    rebuilt.load_state_dict(model.state_dict())
    x = _x()
    assert torch.equal(rebuilt(x)[0], model(x)[0])


@pytest.mark.parametrize("name", NAMES)
def test_model_config_records_defaults_of_extra_options(name: str) -> None:
    cfg = model_config(_model(name))
    extras = set(cfg) - {"name", "input_size", "output_size", "hidden_size", "num_layers",
                         "dropout"}  # fmt: skip
    expected = {
        "elman": {"bias", "fused"},
        "gru": {"fused"},
        "lstm": {"fused"},
        "rnn": {"nonlinearity", "fused"},
        "tcn": {"kernel_size"},
    }
    assert extras == expected[name]


@pytest.mark.parametrize("name", NAMES)
def test_float64_model_keeps_float64(name: str) -> None:
    model = _model(name).double()
    y, state = model(_x(dtype=torch.float64))
    assert y.dtype == torch.float64
    assert all(s.dtype == torch.float64 for s in state)
