"""The run directory of ``elman train``: what it holds, and that its config.toml reruns it."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from elman.checkpoint import read_checkpoint_doc
from elman.errors import ConfigError, DataError
from elman.files import CHECKPOINT_DIR, CHECKPOINT_FILE, HISTORY, TENSORBOARD, new_out_dir
from elman.forecaster import Forecaster
from elman.runs.directory import RunLogger, open_tensorboard
from elman.training.resume import data_fingerprint
from elman.training.trainer import Trainer

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


class StopAfter:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def attach(self, trainer: Trainer, series: list) -> None:
        def stop(t: Trainer, rec: object) -> None:
            t.stop_requested = t.state.epoch == self.epoch

        trainer.callbacks.append(stop)


def test_history_is_written_after_every_epoch(tmp_path: Path) -> None:
    y = np.sin(np.arange(120) / 4)
    f = Forecaster("elman", horizon=2, lookback=8, hidden_size=3, epochs=6, progress=False)
    f.fit(y, hooks=[RunLogger(tmp_path), StopAfter(3)])
    rows = list(csv.DictReader((tmp_path / HISTORY).open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)


@pytest.mark.skipif(HAS_TENSORBOARD, reason="tensorboard is installed")
def test_tensorboard_logging_is_a_no_op_without_tensorboard(tmp_path: Path) -> None:
    assert open_tensorboard(tmp_path / TENSORBOARD) is None
    y = np.sin(np.arange(80) / 4)
    f = Forecaster("elman", horizon=2, lookback=8, hidden_size=3, epochs=2, progress=False)
    f.fit(y, hooks=[RunLogger(tmp_path)])
    assert not (tmp_path / TENSORBOARD).exists()


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed")
def test_tensorboard_logs_when_installed(tmp_path: Path) -> None:
    y = np.sin(np.arange(80) / 4)
    f = Forecaster("elman", horizon=2, lookback=8, hidden_size=3, epochs=2, progress=False)
    f.fit(y, hooks=[RunLogger(tmp_path)])
    assert any((tmp_path / TENSORBOARD).glob("events.out.tfevents.*"))


# ------------------------------------------------------------------ a real run
ARGS = ["--data", "builtin:airline", "--horizon", "6", "--hidden-size", "6", "--epochs", "4",
        "--threads", "1", "--seed", "3", "--checkpoint-every", "2",
        "--no-progress-bar"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "first"
    done = run_cli("train", *ARGS, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_run_directory_holds_config_weights_metadata_history_checkpoint(run: Path) -> None:
    for name in ("config.toml", "model.safetensors", "model.json", "history.csv", "metrics.json"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "model.json").read_text())
    assert meta["format_version"] == 1 and meta["elman_version"] and meta["torch_version"]
    assert set(meta["config"]) == {"data", "model", "train"}
    assert meta["scalers"]["__single__"]["kind"] == "standard"
    data = meta["data"]
    assert data["columns"] == ["passengers"] and data["freq"] == "M"
    assert data["last_timestamp"] == "1960-12" and data["rows"] == 144
    from elman.config import DataConfig
    from elman.data.prepare import load_series

    assert data["fingerprint"] == data_fingerprint(load_series("builtin:airline", DataConfig()))
    assert meta["metrics"]["best_epoch"] >= 1 and math.isfinite(meta["metrics"]["best_loss"])
    assert len(list(csv.DictReader((run / "history.csv").open()))) == 4
    doc = read_checkpoint_doc(run / CHECKPOINT_DIR / CHECKPOINT_FILE)
    assert doc["train_state"]["epoch"] == 4 and doc["checkpoint_every"] == 2
    assert not list(run.rglob("*.tmp")), "a temp file was left behind"


@pytest.mark.slow
def test_config_toml_reruns_the_run_to_the_same_weights(run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    done = run_cli("train", "--config", str(run / "config.toml"), "--out", str(again))
    assert done.returncode == 0, done.stderr
    a, b = load_file(run / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------- a run that fails before it produced anything


def _fail_inside(out: Path, **kw: Any) -> None:
    """Write a config and a sub-folder into a new run directory, then fail as a user error."""
    with pytest.raises(DataError, match="too short"), new_out_dir(out, **kw) as made:
        (made / "config.toml").write_text("x = 1\n")
        (made / "tensorboard").mkdir()
        (made / "tensorboard" / "events").write_text("e")
        raise DataError("series is too short")


def test_a_new_directory_is_removed_when_the_command_fails(tmp_path: Path) -> None:
    out = tmp_path / "a" / "run"
    _fail_inside(out)
    assert not out.exists()
    assert (tmp_path / "a").is_dir()  # only the run directory itself goes


def test_an_empty_directory_the_user_made_is_emptied_not_removed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    _fail_inside(out)
    assert out.is_dir() and not any(out.iterdir())


def test_a_reused_directory_keeps_everything_when_the_command_fails(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    _fail_inside(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "config.toml").is_file()  # nothing is deleted from a directory that held files


def test_a_run_that_produced_something_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fail_inside(out, produced=lambda path: (path / "config.toml").exists())
    assert (out / "config.toml").is_file()


def test_a_run_that_succeeds_is_kept_and_a_full_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with new_out_dir(out) as made:
        (made / "config.toml").write_text("x = 1\n")
    assert (out / "config.toml").is_file()
    with pytest.raises(ConfigError, match="already exists and is not empty"), new_out_dir(out):
        pass
