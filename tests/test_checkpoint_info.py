"""``elman info``: a run or model summarised from metadata alone, weights never loaded."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from elman.config import DataConfig
from elman.data.prepare import load_series
from elman.errors import CheckpointError
from elman.files import CHECKPOINT_DIR
from elman.forecaster import Forecaster
from elman.runs.directory import data_schema, describe
from elman.training.resume import Checkpointer
from elman.training.trainer import Trainer

OPTS = dict(horizon=3, lookback=12, hidden_size=4, epochs=4, progress=False, threads=1)


class StopAfter:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def attach(self, trainer: Trainer, series: list) -> None:
        def stop(t: Trainer, rec: object) -> None:
            t.stop_requested = t.state.epoch == self.epoch

        trainer.callbacks.append(stop)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    series = load_series(np.sin(np.arange(150) / 5) * 10 + 50, DataConfig())
    f = Forecaster("gru", **OPTS).fit(series, hooks=[Checkpointer(out / CHECKPOINT_DIR)])
    f.save(out, extra={"data": data_schema(series)})
    return out


@pytest.fixture(scope="module")
def stopped_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stopped")
    y = np.sin(np.arange(150) / 5)
    extra = {"config": Forecaster("gru", **OPTS).config.to_dict()}
    ckpt = Checkpointer(out / CHECKPOINT_DIR, extra=extra)
    Forecaster("gru", **OPTS).fit(y, hooks=[ckpt, StopAfter(2)])
    return out


def test_describe_reports_model_data_training_and_checkpoint(run_dir: Path) -> None:
    info = describe(run_dir)
    assert info["model"]["name"] == "gru" and info["model"]["hidden_size"] == 4
    net = Forecaster.load(run_dir).model
    assert net is not None
    assert info["model"]["parameters"] == sum(v.numel() for v in net.state_dict().values())
    assert info["data"]["rows"] == 150 and info["data"]["last_timestamp"] == "149"
    assert info["training"]["epochs_run"] == 4
    assert info["checkpoint"] == {
        "epoch": 4, "epochs": 4, "complete": True, "interrupted": False,
        "stopped_early": False, "best_epoch": info["training"]["best_epoch"],
        "best_loss": info["training"]["best_loss"], "retries": 0,
    }  # fmt: skip


def test_info_does_not_need_intact_weights(run_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "copy"
    d.mkdir()
    for p in run_dir.iterdir():
        if p.is_file():
            (d / p.name).write_bytes(p.read_bytes())
    raw = bytearray((d / "model.safetensors").read_bytes())
    start = 8 + struct.unpack("<Q", bytes(raw[:8]))[0]
    raw[start:] = b"\xff" * (len(raw) - start)  # every weight destroyed, header intact
    (d / "model.safetensors").write_bytes(bytes(raw))
    assert describe(d)["model"]["parameters"] == describe(run_dir)["model"]["parameters"]
    with pytest.raises(CheckpointError, match="changed or damaged"):
        Forecaster.load(d)


def test_describe_an_interrupted_run_from_its_checkpoint(stopped_dir: Path) -> None:
    info = describe(stopped_dir)
    assert info["training"] is None and info["model"] is None
    ck = info["checkpoint"]
    assert (ck["epoch"], ck["epochs"], ck["interrupted"], ck["complete"]) == (2, 4, True, False)
    assert info["data"]["fingerprint"].startswith("sha256:")


def test_describe_refuses_a_folder_without_elman_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="holds neither model.json nor checkpoint"):
        describe(tmp_path)


def test_info_command_prints_the_summary_and_json(run_dir: Path, stopped_dir: Path) -> None:
    text = run_cli("info", str(run_dir))
    assert text.returncode == 0, text.stderr
    labels = [line.split()[0] for line in text.stdout.splitlines()]
    assert labels == ["path", "model", "ensemble", "windows", "data", "columns", "fingerprint",
                      "training", "checkpoint", "written"]  # fmt: skip
    assert "gru, hidden 4 x 1 layer(s), direct strategy, " in text.stdout
    assert "checkpoint   epoch 4 of 4 (complete)\n" in text.stdout
    as_json = run_cli("info", str(stopped_dir), "--json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["checkpoint"]["interrupted"] is True and doc["checkpoint"]["epoch"] == 2
