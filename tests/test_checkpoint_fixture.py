"""A model saved in format version 1 (committed under tests/fixtures/model_v1) keeps loading
and forecasting the numbers it forecast when it was written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from elman.forecaster import Forecaster
from elman.runs.directory import describe

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "model_v1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


def _maker():
    spec = importlib.util.spec_from_file_location(
        "make_model_v1", FIXTURE.parent / "make_model_v1.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_format_v1_model_predicts_the_stored_numbers() -> None:
    f = Forecaster.load(FIXTURE)
    out = f.predict()
    assert [str(v) for v in out.index] == EXPECTED["predict_index"]
    np.testing.assert_allclose(out.to_numpy(), EXPECTED["predict"], rtol=1e-5, atol=1e-4)


def test_format_v1_model_continues_other_history() -> None:
    f = Forecaster.load(FIXTURE)
    history = _maker().other_history(EXPECTED["other_history"])
    out = f.predict(data=history)
    np.testing.assert_allclose(
        out.to_numpy(), EXPECTED["predict_other_history"], rtol=1e-5, atol=1e-4
    )


def test_format_v1_metadata_is_described_without_the_weights() -> None:
    info = describe(FIXTURE)
    assert info["versions"]["format_version"] == 1
    assert info["model"]["name"] == "gru" and info["model"]["parameters"] > 0
    assert info["data"]["source"] == "builtin:airline"
    assert info["data"]["last_timestamp"] == "1960-12"
    assert info["data"]["fingerprint"].startswith("sha256:")


def test_fixture_maker_refuses_to_overwrite_the_fixture() -> None:
    before = (FIXTURE / "model.safetensors").read_bytes()
    assert _maker().main() == 1
    assert (FIXTURE / "model.safetensors").read_bytes() == before
