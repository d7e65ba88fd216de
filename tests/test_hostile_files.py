"""Tampered run directories: a hand-edited model.json with a recomputed digest, damaged
report files. Each edit ends in one ``elman: error:`` line naming the file and the key
(exit code 2), never an internal error, a hang, or infinite forecasts with exit code 0.

One small run is trained once; every edited copy is made and every command run at once (in
parallel subprocesses), and each test then checks its own edit's outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from elman.checkpoint import META_DIGEST_KEY, seal
from elman.files import ACTUALS, META, METRICS
from elman.forecaster import Forecaster

TRAIN = ["--data", "builtin:airline", "--horizon", "12", "--hidden-size", "4", "--epochs", "3",
         "--threads", "1", "--seed", "1", "--no-progress-bar"]  # fmt: skip
TIMEOUT = 60  # seconds; a command still running then counts as a hang


def _set(*path: Any, value: Any):
    def edit(meta: dict) -> None:
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _huge_scale(meta: dict) -> None:
    for scaler in meta["scalers"].values():
        scaler["scale"] = [1e308] * len(scaler["scale"])


def _huge_quantiles(meta: dict) -> None:
    table = meta["calibration"]["quantiles"]
    for level in table:
        table[level] = [[1e308] * len(row) for row in table[level]]


def _deep_metrics(run: Path) -> None:
    (run / METRICS).write_text("[" * 100_000 + "]" * 100_000)


def _no_position(run: Path) -> None:
    frame = pd.read_csv(run / ACTUALS)
    frame.drop(columns="position").to_csv(run / ACTUALS, index=False)


# name: (edit of model.json or of the directory, command, words the error must hold)
CASES: dict[str, tuple[Any, list[str], list[str]]] = {
    "hidden_size": (
        _set("model_config", "hidden_size", value=10**12), ["forecast"],
        [META, "model_config.hidden_size"],
    ),
    "num_layers": (
        _set("model_config", "num_layers", value=10**9), ["forecast"],
        [META, "model_config.num_layers"],
    ),
    "lookback": (
        _set("sizes", "lookback", value=10**9), ["export"], [META, "sizes.lookback"]
    ),
    "horizon": (_set("sizes", "horizon", value=100), ["forecast"], [META, "sizes.horizon"]),
    "n_targets": (_set("layout", "n_targets", value=2), ["export"], [META, "n_targets"]),
    "n_future": (_set("layout", "n_future", value=1), ["plot"], [META, "n_future"]),
    "series": (_set("series", value=[]), ["export"], [META, "series lists 0"]),
    "scale": (_huge_scale, ["forecast"], [META, "scalers.__single__.scale"]),
    "calibration": (
        _huge_quantiles, ["forecast", "--intervals", "80"], [META, "calibration", "quantiles"]
    ),
    "deep_json": (_deep_metrics, ["plot"], [METRICS, "nested too deeply"]),
    "actuals_position": (_no_position, ["plot"], [ACTUALS, "'position' column"]),
}  # fmt: skip
DIRECTORY_EDITS = {"deep_json", "actuals_position"}


def _run(args: list[str]) -> subprocess.CompletedProcess | None:
    """``elman ARGS`` in a subprocess; ``None`` when it ran past :data:`TIMEOUT` (a hang)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        return subprocess.run(
            [sys.executable, "-m", "elman", *args],
            capture_output=True, text=True, timeout=TIMEOUT, env=env,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    done = run_cli("train", *TRAIN, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def outcomes(run: Path) -> dict[str, Any]:
    """Every edited copy, its command and ``elman info`` on it, run in parallel."""
    jobs: dict[tuple[str, str], list[str]] = {}
    for name, (edit, command, _) in CASES.items():
        d = run.parent / name
        shutil.copytree(run, d)
        if name in DIRECTORY_EDITS:
            edit(d)
        else:
            meta = json.loads((d / META).read_text())
            meta.pop(META_DIGEST_KEY)
            edit(meta)
            (d / META).write_text(json.dumps(seal(meta, META_DIGEST_KEY)))
        args = [command[0], str(d), *command[1:]]
        if command[0] == "export":
            args += ["--output", str(d / "m.onnx")]
        jobs[(name, "command")] = args
        jobs[(name, "info")] = ["info", str(d)]
    with ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2))) as pool:
        futures = {key: pool.submit(_run, args) for key, args in jobs.items()}
        return {key: fut.result() for key, fut in futures.items()}


def _one_error_line(done: subprocess.CompletedProcess | None) -> str:
    assert done is not None, f"hung for {TIMEOUT} s"
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elman: error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_an_edited_run_is_refused_in_one_line_naming_file_and_key(
    outcomes: dict[str, Any], name: str
) -> None:
    line = _one_error_line(outcomes[(name, "command")])
    for word in CASES[name][2]:
        assert word in line, line
    info = outcomes[(name, "info")]
    assert info is not None, f"elman info hung for {TIMEOUT} s"
    assert "Traceback" not in info.stderr and "internal error" not in info.stderr, info.stderr
    assert info.returncode in (0, 2), info.stderr
    if info.returncode == 2:
        assert len(info.stderr.strip().splitlines()) == 1, info.stderr


def test_the_untouched_run_forecasts_finite_numbers(run: Path) -> None:
    f = Forecaster.load(run)
    out = f.predict(intervals=[80])
    assert out.shape[0] == 12
    assert np.isfinite(out.to_numpy(dtype=float)).all()
