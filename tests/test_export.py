"""ONNX export: parity with PyTorch under onnxruntime, metadata, the standalone script, errors.

Parity is measured in model units (differences divided by the target's scale): the network
runs in float32 in both runtimes, and float32 spacing at a real-unit level of ~400 is 3e-5,
so a real-unit bound only makes sense where the scale is about 1 (the random-window tests).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from elman.data.calendar import calendar_features
from elman.data.prepare import load_series
from elman.errors import ConfigError
from elman.export.onnx import (
    MAX_UNROLL,
    MIN_OPSET,
    context_inputs,
    read_metadata,
    scaler_table,
    step_parity,
    step_path_for,
)
from elman.forecaster import Forecaster
from elman.models.registry import window_models

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "onnx_forecast.py"
FAST = {
    "epochs": 1,
    "max_batches": 5,
    "val_size": 0,
    "hidden_size": 8,
    "batch_size": 32,
    "progress": False,
    "threads": 1,  # tiny models: one thread avoids waiting on busy cores
}
TOL = 1e-5
COMBOS = [(m, s) for m in window_models() for s in ("direct", "recursive")]


def _sine(n: int = 160, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 12) + 0.05 * rng.standard_normal(n)


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["y"], feeds)[0]


def _scaled_diff(f: Forecaster, got: np.ndarray, want: np.ndarray, rows: np.ndarray) -> float:
    """Max |got - want| divided by the target scale of each row's series."""
    _, _, scale = scaler_table(f)
    per = scale[rows][:, None, : got.shape[-1]]
    return float(np.max(np.abs(got - want) / per))


@pytest.fixture(scope="module")
def sine_models(tmp_path_factory):
    """One tiny model per type x strategy, trained on a unit-scale sine, and its export."""
    out = {}
    root = tmp_path_factory.mktemp("sine")
    for model, strategy in COMBOS:
        f = Forecaster(model, horizon=4, lookback=12, strategy=strategy, **FAST).fit(_sine())
        out[model, strategy] = (f, f.export_onnx(root / f"{model}_{strategy}.onnx", check=False))
    return out


@pytest.mark.parametrize(("model", "strategy"), COMBOS)
def test_sequence_graph_matches_pytorch_on_random_windows(sine_models, model, strategy):
    f, paths = sine_models[model, strategy]
    rng = np.random.default_rng(0)
    for batch in (1, 5):  # dynamic batch: the graph was traced with 2
        windows = rng.normal(0.0, 1.0, (batch, 12, 1))
        series = [load_series(w, f.config.data)[0] for w in windows]
        want = f.forecast_arrays(series, 4)  # [B, H, 1] real units
        got = _run(paths[0], {"x": windows})
        assert got.shape == want.shape == (batch, 4, 1)
        assert got.dtype == np.float64
        assert np.abs(got - want).max() <= TOL
        assert _scaled_diff(f, got, want, np.zeros(batch, dtype=int)) <= TOL


@pytest.mark.parametrize(("model", "strategy"), COMBOS)
def test_step_graph_matches_pytorch_step_by_step(sine_models, model, strategy):
    f, paths = sine_models[model, strategy]
    assert paths[1] == step_path_for(paths[0]) and paths[1].name.endswith(".step.onnx")
    assert step_parity(f, paths[1]) <= TOL  # outputs at every step and the final state


@pytest.mark.parametrize(("model", "strategy"), COMBOS)
def test_sequence_graph_matches_predict_on_real_data(tmp_path, model, strategy):
    f = Forecaster(model, horizon=6, lookback=24, strategy=strategy, **FAST)
    f.fit("builtin:airline")
    (path,) = f.export_onnx(tmp_path / "m.onnx", step=False, check=False)
    got = _run(path, context_inputs(f, 6))
    want = f.predict().to_numpy()[None]  # [1, H, 1] passengers
    assert _scaled_diff(f, got, want, np.zeros(1, dtype=int)) <= TOL


@pytest.mark.parametrize(
    "options",
    [
        {"model": "lstm", "num_layers": 2, "norm": "none", "scaler": "minmax"},
        {"model": "elman", "num_layers": 2, "strategy": "recursive"},
        {"model": "tcn", "num_layers": 2, "strategy": "recursive", "norm": "none"},
    ],
    ids=["lstm-2layers-nonorm-minmax", "elman-2layers-recursive", "tcn-2blocks-recursive"],
)
def test_other_configurations_keep_parity(tmp_path, options):
    f = Forecaster(horizon=3, lookback=16, **{**FAST, **options}).fit(_sine(120) * 30 + 200)
    path, step = f.export_onnx(tmp_path / "m.onnx")
    got = _run(path, context_inputs(f, 3))
    assert _scaled_diff(f, got, f.forecast_arrays(f.series, 3), np.zeros(1, dtype=int)) <= TOL
    assert step_parity(f, step) <= TOL


@pytest.mark.parametrize("model", ["elman", "lstm", "tcn"])
def test_oldest_supported_opset_keeps_parity(sine_models, tmp_path, model):
    f = sine_models[model, "recursive"][0]
    (path, step) = f.export_onnx(tmp_path / "m.onnx", opset=MIN_OPSET, check=False)
    assert onnx.load(str(path)).opset_import[0].version == MIN_OPSET
    got = _run(path, context_inputs(f, 4))
    assert np.abs(got - f.forecast_arrays(f.series, 4)).max() <= TOL
    assert step_parity(f, step) <= TOL


def test_recursive_graph_may_unroll_beyond_the_trained_horizon(tmp_path):
    f = Forecaster("gru", horizon=3, lookback=12, strategy="recursive", **FAST).fit(_sine())
    (path,) = f.export_onnx(tmp_path / "m.onnx", horizon=10, step=False)
    got = _run(path, context_inputs(f, 10))
    assert got.shape == (1, 10, 1)
    assert np.abs(got[0] - f.predict(horizon=10).to_numpy()).max() <= TOL
    assert read_metadata(path)["horizon"] == 10


def test_direct_graph_may_cut_the_horizon(tmp_path):
    f = Forecaster("lstm", horizon=6, lookback=12, **FAST).fit(_sine())
    (path,) = f.export_onnx(tmp_path / "m.onnx", horizon=2, step=False)
    got = _run(path, context_inputs(f, 2))
    assert np.abs(got[0] - f.predict(horizon=2).to_numpy()).max() <= TOL


def test_many_series_graph_picks_each_series_scaler(tmp_path):
    f = Forecaster("gru", horizon=4, series_id="series", **FAST).fit("builtin:us_macro")
    (path, step) = f.export_onnx(tmp_path / "m.onnx")
    feeds = context_inputs(f, 4)
    assert feeds["x"].shape[0] == 12 and list(feeds["series"]) == list(range(12))
    got = _run(path, feeds)  # [12, 4, 1]
    want = f.predict()["value"].to_numpy().reshape(12, 4, 1)
    assert _scaled_diff(f, got, want, feeds["series"]) <= TOL
    meta = read_metadata(path)
    assert meta["series_ids"] == list(f.scalers) and meta["series_col"] == "series"
    assert step_parity(f, step) <= TOL


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_future_covariates_are_graph_inputs(tmp_path, strategy):
    t = np.arange(200)
    df = pd.DataFrame({"y": _sine(200) * 5 + 20, "promo": (t % 7 == 0) * 1.0})
    f = Forecaster("lstm", horizon=3, lookback=12, strategy=strategy, target="y",
                   future_covariates=["promo"], **FAST).fit(df)  # fmt: skip
    future = pd.DataFrame({"promo": [1.0, 0.0, 1.0]})
    (path, step) = f.export_onnx(tmp_path / "m.onnx")
    feeds = context_inputs(f, 3, future)
    assert feeds["future"].shape == (1, 3, 1)
    got = _run(path, feeds)
    want = f.predict(future=future).to_numpy()[None]
    assert _scaled_diff(f, got, want, np.zeros(1, dtype=int)) <= TOL
    assert step_parity(f, step) <= TOL


def test_metadata_describes_the_model(tmp_path):
    f = Forecaster("lstm", horizon=6, lookback=24, **FAST).fit("builtin:airline")
    path, step = f.export_onnx(tmp_path / "m.onnx")
    meta = read_metadata(path)
    assert meta["format"] == "elman-onnx" and meta["graph"] == "sequence"
    assert (meta["lookback"], meta["horizon"], meta["strategy"]) == (24, 6, "direct")
    assert meta["freq"] == f.series[0].freq and meta["targets"] == f.series[0].targets
    assert meta["last_timestamp"] == ["1960-12"]
    assert meta["future_index"][0][:2] == ["1961-01", "1961-02"]
    sc = next(iter(f.scalers.values()))
    assert meta["scaler"]["center"] == [list(sc.center)]
    assert meta["scaler"]["scale"] == [list(sc.scale)]
    assert np.array_equal(np.asarray(meta["context"][0]), f.series[0].tail(24).values)
    smeta = read_metadata(step)
    assert smeta["graph"] == "step" and smeta["step_outputs"] == 6
    # LSTM (h, c), then the highway window of the last 24 target inputs
    assert smeta["state_names"] == ["state_0", "state_1", "state_2"]
    assert smeta["state_shapes"] == [[1, 1, 8], [1, 1, 8], [1, 24, 1]]
    assert smeta["state_batch_axes"] == [1, 1, 0] and smeta["highway"] == 24


# ---------------------------------------------------------------------- standalone script
_ISOLATED = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"elman", "torch", "pandas"}:
            raise ModuleNotFoundError(f"{name} is blocked")
sys.meta_path.insert(0, Block())
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("/src")]
try:
    import elman
except ImportError:
    pass
else:
    sys.exit("elman is importable")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _script(*args: str | Path) -> pd.DataFrame:
    """Run the example without elman, torch or pandas importable; parse its CSV output."""
    cmd = [sys.executable, "-I", "-c", _ISOLATED, str(SCRIPT), *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line.split(",") for line in done.stdout.strip().splitlines()]
    return pd.DataFrame(lines[1:], columns=lines[0])


@pytest.fixture(scope="module")
def airline_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("airline")
    f = Forecaster("lstm", horizon=6, lookback=24, calendar=True, **FAST).fit("builtin:airline")
    f.export_onnx(root / "model.onnx")
    return f, root / "model.onnx"


@pytest.mark.parametrize("step", [False, True], ids=["sequence", "step"])
def test_standalone_script_without_elman_equals_predict(airline_export, step):
    f, path = airline_export
    out = _script(path, *(["--step"] if step else []))
    want = f.predict()
    assert list(out["time"]) == [str(i) for i in want.index]
    got = out["passengers"].astype(float).to_numpy()
    scale = next(iter(f.scalers.values())).scale[0]
    assert np.abs(got - want["passengers"].to_numpy()).max() / scale <= TOL


def test_saved_and_loaded_forecaster_exports_the_same_forecast(airline_export, tmp_path):
    f, _ = airline_export
    f.save(tmp_path / "run")
    g = Forecaster.load(tmp_path / "run")
    g.export_onnx(tmp_path / "loaded.onnx")
    out = _script(tmp_path / "loaded.onnx")
    scale = next(iter(f.scalers.values())).scale[0]
    want = f.predict()["passengers"].to_numpy()
    assert np.abs(out["passengers"].astype(float).to_numpy() - want).max() / scale <= TOL


def test_standalone_script_continues_a_csv(airline_export, tmp_path):
    f, path = airline_export
    recent = f.series[0].slice(0, 130)  # an earlier cut of the series
    frame = recent.to_frame()
    frame.index.name = "month"
    frame.to_csv(tmp_path / "recent.csv")
    cal = calendar_features(recent.future_index(6), recent.freq, recent.season)
    cal.to_csv(tmp_path / "future.csv")
    out = _script(path, "--data", tmp_path / "recent.csv", "--future", tmp_path / "future.csv")
    want = f.predict(data=recent).to_numpy().ravel()
    scale = next(iter(f.scalers.values())).scale[0]
    assert list(out["step"]) == ["1", "2", "3", "4", "5", "6"]
    assert np.abs(out["passengers"].astype(float).to_numpy() - want).max() / scale <= TOL


def test_standalone_script_handles_many_series(tmp_path):
    f = Forecaster("elman", horizon=3, series_id="series", **FAST).fit("builtin:us_macro")
    f.export_onnx(tmp_path / "m.onnx", step=False)
    out = _script(tmp_path / "m.onnx")
    want = f.predict()
    assert list(out["series"]) == list(want["series"].astype(str))
    _, _, scale = scaler_table(f)
    got = out["value"].astype(float).to_numpy().reshape(12, 3)
    assert np.max(np.abs(got - want["value"].to_numpy().reshape(12, 3)) / scale[:, :1]) <= TOL


# ---------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def small(sine_models):
    return sine_models["gru", "direct"][0]


def test_direct_horizon_beyond_training_is_refused(small, tmp_path):
    with pytest.raises(ConfigError, match=r"at most its trained horizon \(4\), asked for 9; "):
        small.export_onnx(tmp_path / "m.onnx", horizon=9)
    assert not (tmp_path / "m.onnx").exists()


def test_recursive_horizon_beyond_unroll_limit_points_to_the_step_graph(sine_models, tmp_path):
    f = sine_models["gru", "recursive"][0]
    with pytest.raises(ConfigError, match=r"must be <= 1000; loop over the step graph"):
        f.export_onnx(tmp_path / "m.onnx", horizon=MAX_UNROLL + 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"horizon": 0}, r"--horizon \(0\) must be an integer >= 1"),
        ({"opset": MIN_OPSET - 1}, rf"--opset \({MIN_OPSET - 1}\) must be an integer >= "),
    ],
)
def test_invalid_options_are_refused(small, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        small.export_onnx(tmp_path / "m.onnx", **options)


def test_existing_output_is_kept_without_overwrite(small, tmp_path):
    target = tmp_path / "m.step.onnx"
    target.write_bytes(b"mine")
    with pytest.raises(ConfigError, match=r"m.step.onnx' already exists; .* --overwrite"):
        small.export_onnx(tmp_path / "m.onnx")
    assert target.read_bytes() == b"mine" and not (tmp_path / "m.onnx").exists()
    small.export_onnx(tmp_path / "m.onnx", overwrite=True)
    assert read_metadata(target)["graph"] == "step"


def test_directory_output_and_unfitted_forecaster_are_refused(small, tmp_path):
    with pytest.raises(ConfigError, match="is a directory; give a file name"):
        small.export_onnx(tmp_path)
    with pytest.raises(ConfigError, match="not fitted yet"):
        Forecaster("lstm").export_onnx(tmp_path / "m.onnx")


# ---------------------------------------------------------------------- CLI and dynamo
@pytest.mark.slow
def test_cli_export_matches_cli_forecast(cli, tmp_path):
    run = tmp_path / "run"
    done = cli("train", "--data", "builtin:nile", "--horizon", "5", "--epochs", "2",
               "--hidden-size", "8", "--model", "gru", "--strategy", "recursive",
               "--ensemble", "none", "--no-progress-bar", "--out", str(run))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "nile.onnx"
    done = cli("export", str(run), "--format", "onnx", "--output", str(out), "--horizon", "8")
    assert done.returncode == 0, done.stderr
    assert "max abs difference" in done.stdout and f"wrote {out}" in done.stdout
    assert step_path_for(out).exists()
    forecast = cli("forecast", str(run), "--horizon", "8")
    table = pd.read_csv(pd.io.common.StringIO(forecast.stdout), index_col=0)
    f = Forecaster.load(run)
    got = _run(out, context_inputs(f, 8))[0, :, 0]
    scale = next(iter(f.scalers.values())).scale[0]
    assert np.abs(got - table.iloc[:, 0].to_numpy()).max() / scale <= TOL
    default = cli("export", str(run), "--no-check")
    assert default.returncode == 0, default.stderr
    assert (run / "model.onnx").exists() and (run / "model.step.onnx").exists()
    again = cli("export", str(run), "--output", str(out))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"elman: error: --output '{out}' already exists; choose another name or pass --overwrite"
    ]


def test_cli_unsupported_format_is_one_line(cli, tmp_path):
    done = cli("export", str(tmp_path), "--format", "tflite", "--output", "m.onnx")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "elman: error: --format 'tflite' is not supported; use --format onnx (run the ONNX "
        "file with onnxruntime, or convert it with ONNX tools)"
    ]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["elman", "lstm"])
def test_dynamo_exporter_gives_the_same_forecasts(sine_models, tmp_path, model):
    f, paths = sine_models[model, "recursive"]
    mine = f.export_onnx(tmp_path / "d.onnx", dynamo=True)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.normal(0.0, 1.0, (3, 12, 1))}
    assert np.abs(_run(mine[0], feeds) - _run(paths[0], feeds)).max() <= TOL
    assert step_parity(f, mine[1]) <= TOL
