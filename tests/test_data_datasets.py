"""Built-in datasets: registry, packaged files, defaults, frequency of every shipped series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elman.data import dataset_path, list_datasets, load_dataset, read_series, seed_sine
from elman.errors import DataError

REPO = Path(__file__).resolve().parents[1]
NAMES = [info.name for info in list_datasets()]


def test_registry_names() -> None:
    assert NAMES == [
        "sine",
        "sine_long",
        "noisy_sine",
        "mackey_glass",
        "airline",
        "co2",
        "sunspots",
        "nile",
        "us_macro",
        "many_series",
    ]


@pytest.mark.parametrize("info", list_datasets(), ids=NAMES)
def test_every_dataset_reads_with_its_defaults(info) -> None:
    found = read_series(f"builtin:{info.name}", missing="interpolate")
    assert len(found) == info.n_series
    for series in found:
        assert len(series) == info.length
        assert series.freq == info.freq
        assert series.targets == [info.target]
        assert np.isfinite(series.values).all()
    assert info.source


def test_sine_dataset_is_the_seed() -> None:
    np.testing.assert_array_equal(load_dataset("sine")["y"].to_numpy(), seed_sine())


def test_unknown_dataset() -> None:
    with pytest.raises(DataError, match="unknown built-in dataset 'air'; valid names: .*airline"):
        load_dataset("air")


def test_generated_dataset_has_no_file() -> None:
    with pytest.raises(DataError, match="'sine' is generated and has no file"):
        dataset_path("sine")


@pytest.mark.parametrize("info", [i for i in list_datasets() if i.file], ids=lambda i: i.name)
def test_example_copies_match_packaged_files(info) -> None:
    packaged = Path(dataset_path(info.name)).read_bytes()
    assert (REPO / "examples" / "data" / str(info.file)).read_bytes() == packaged


def test_sources_notes_are_shipped() -> None:
    notes = (Path(dataset_path("airline")).parent / "SOURCES.md").read_text()
    assert "public domain" in notes and "Box & Jenkins" in notes
    assert "statsmodels" in (REPO / "examples" / "data" / "README.md").read_text()
