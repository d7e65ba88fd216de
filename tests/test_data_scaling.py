"""Scaler: round trips, column subsets, constant columns, JSON-safe state, bad metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from elman.data import Scaler
from elman.errors import CheckpointError, ConfigError, DataError

DATA = np.column_stack([np.linspace(0, 10, 50), np.sin(np.arange(50)) * 5 + 3, np.full(50, 7.0)])


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_round_trip(kind: str) -> None:
    scaler = Scaler(kind).fit(DATA)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(DATA)), DATA)


def test_standard_gives_zero_mean_unit_std() -> None:
    z = Scaler("standard").fit(DATA).transform(DATA)
    np.testing.assert_allclose(z[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1.0)


def test_minmax_lands_in_unit_interval() -> None:
    z = Scaler("minmax").fit(DATA).transform(DATA)
    assert z[:, :2].min() == pytest.approx(0.0) and z[:, :2].max() == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_constant_column_does_not_divide_by_zero(kind: str) -> None:
    scaler = Scaler(kind).fit(DATA)
    assert scaler.scale is not None and scaler.scale[2] == 1.0
    assert np.isfinite(scaler.transform(DATA)).all()


def test_column_subset_and_batched_shapes() -> None:
    scaler = Scaler().fit(DATA)
    targets = DATA[:, :1].reshape(5, 10, 1)  # [B, H, 1]
    z = scaler.transform(targets, columns=[0])
    assert z.shape == (5, 10, 1)
    np.testing.assert_allclose(scaler.inverse_transform(z, columns=[0]), targets)


def test_tensors_keep_dtype() -> None:
    scaler = Scaler().fit(DATA)
    x = torch.tensor(DATA[None], dtype=torch.float32)  # [1, T, C]
    z = scaler.transform(x)
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float32
    torch.testing.assert_close(scaler.inverse_transform(z), x)


def test_to_dict_is_json_and_round_trips() -> None:
    scaler = Scaler("minmax").fit(DATA)
    state = json.loads(json.dumps(scaler.to_dict()))
    again = Scaler.from_dict(state)
    np.testing.assert_array_equal(again.transform(DATA), scaler.transform(DATA))
    assert again.kind == "minmax"


def test_wrong_width_is_reported() -> None:
    with pytest.raises(DataError, match=r"scaler expects 3 columns .*got shape \(4, 2\)"):
        Scaler().fit(DATA).transform(np.zeros((4, 2)))


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="scaler kind 'robust' is not one of standard"):
        Scaler("robust")


def test_unfitted_use_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Scaler().transform(DATA)


def test_fit_on_nothing() -> None:
    with pytest.raises(DataError, match="cannot fit a scaler on 0 rows"):
        Scaler().fit(np.zeros((0, 2)))


@pytest.mark.parametrize(
    "state",
    [
        {"kind": "standard"},
        {"kind": "odd", "center": [0.0], "scale": [1.0]},
        {"kind": "standard", "center": [0.0, 1.0], "scale": [1.0]},
        {"kind": "standard", "center": [0.0], "scale": [0.0]},
        {"kind": "standard", "center": ["a"], "scale": [1.0]},
    ],
)
def test_bad_metadata(state: dict) -> None:
    with pytest.raises(CheckpointError, match="scaler metadata"):
        Scaler.from_dict(state)
