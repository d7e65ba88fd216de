"""Series of different lengths in one model: short series are padded, not the lookback cut.

A panel whose median series holds the automatic lookback keeps it; series too short for it
are padded at the start with their first row (``Sizes.padded``), in training, at every
forecast and cutoff, in saved models and in ONNX exports.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elman.checkpoint import META_DIGEST_KEY, seal
from elman.config import DataConfig
from elman.data.prepare import MIN_TRAIN_WINDOWS, Sizes, load_series, resolve_sizes, window_pads
from elman.data.windows import Layout, Panel, make_batch
from elman.errors import CheckpointError, ConfigError, DataError
from elman.forecaster import Forecaster
from elman.forecasting.saved import META

LENGTHS = (400, 420, 380, 40, 30)  # three long monthly series and two short ones
TINY = {"hidden_size": 8, "epochs": 2, "seed": 0, "progress": False, "ensemble": "none"}


def panel_frame(lengths=LENGTHS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    parts = []
    for i, n in enumerate(lengths):
        t = np.arange(n)
        y = 50 + 10 * np.sin(2 * np.pi * t / 12) + 0.05 * t + rng.normal(0, 1, n)
        stamps = pd.date_range("2000-01", periods=n, freq="MS")
        parts.append(pd.DataFrame({"id": f"s{i}", "time": stamps, "y": y}))
    return pd.concat(parts, ignore_index=True)


CFG = {"series_id": "id", "target": "y", "time_col": "time", "horizon": 6}


@pytest.fixture(scope="module")
def padded() -> Forecaster:
    return Forecaster("lstm", **CFG, **TINY).fit(panel_frame())


# ------------------------------------------------------------------ sizes
def test_short_series_no_longer_cap_the_lookback_of_the_panel(caplog):
    cfg = DataConfig(**CFG)
    series = load_series(panel_frame(), cfg)
    with caplog.at_level("WARNING", logger="elman.data.prepare"):
        sizes = resolve_sizes(series, cfg, pad=True)
    assert (sizes.lookback, sizes.padded, sizes.first_cutoff) == (36, True, 1)  # 3 x season 12
    (record,) = caplog.records
    said = record.getMessage()
    assert "lookback 36: 2 of the 5 series are too short" in said
    assert "(series 's4'), has 30 points" in said and "padded at the start" in said
    capped = resolve_sizes(series, cfg)  # without padding (ES-RNN, recursive, tbptt): as before
    assert capped.lookback < 36 and not capped.padded
    ends = [len(s) - sizes.val_size for s in series]
    assert window_pads(ends, sizes) == [0, 0, 0, 35, 35]
    assert window_pads(ends, capped) == [0] * 5


@pytest.mark.parametrize(
    ("lengths", "lookback", "padded"),
    [
        ((60,), None, False),  # one short series: its own cap, nothing to pad against
        ((400, 45, 45), None, False),  # the median series is the short one: the cap stays
        ((400, 420, 60), 48, True),  # a given lookback that 60 points cannot hold once
        ((400, 420, 100), 48, False),  # ... and one that every series holds
    ],
)
def test_padding_only_where_the_median_series_holds_the_lookback(lengths, lookback, padded):
    cfg = DataConfig(**CFG, lookback=lookback)
    sizes = resolve_sizes(load_series(panel_frame(lengths), cfg), cfg, pad=True)
    assert sizes.padded is padded
    if lookback is None and not padded:
        assert sizes.lookback < 36


def test_sizes_refuse_a_padded_flag_that_is_not_a_boolean():
    with pytest.raises(ConfigError, match="sizes.padded must be true or false"):
        Sizes(lookback=4, horizon=2, val_size=0, season=1, padded="yes")  # type: ignore[arg-type]


# ------------------------------------------------------------------ windows
@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(3, 30), min_size=1, max_size=4),
    pad=st.lists(st.integers(0, 9), min_size=4, max_size=4),
    lookback=st.integers(1, 10),
    horizon=st.integers(1, 4),
)
def test_padded_windows_read_the_first_row_and_never_target_a_pad(lengths, pad, lookback, horizon):
    pads = [min(p, lookback - 1) for p in pad[: len(lengths)]]
    arrays = [torch.tensor([[i * 1000.0 + r] for r in range(n)]) for i, n in enumerate(lengths)]
    panel = Panel(arrays, Layout(1), pads)
    starts = panel.starts(lookback, horizon, [0] * len(lengths), list(lengths))
    want = sum(max(0, n - lookback - horizon + 1 + p) for n, p in zip(lengths, pads, strict=True))
    assert len(starts) == want
    for i in range(len(lengths)):  # offsets point at each series' first real row
        assert panel.feats[panel.offsets[i], 0] == i * 1000.0
    if not len(starts):
        return
    b = make_batch(panel, torch.from_numpy(starts), lookback, horizon, "direct", "none")
    series = b.x[..., 0] // 1000
    assert (series == series[:, :1]).all()  # padding never reaches into another series
    rows_x = b.x[..., 0] % 1000
    assert (rows_x >= 0).all() and (torch.diff(rows_x, dim=1) >= 0).all()  # pads: row 0 repeated
    rows_y = b.y[..., 0] % 1000
    assert (rows_y >= 1).all()  # a target is a real point after at least one real input
    assert (torch.diff(rows_y, dim=1) == 1).all()


# ------------------------------------------------------------------ a padded model
def test_a_short_series_forecast_is_the_forecast_of_its_padded_history(padded):
    assert padded.sizes.padded and padded.sizes.lookback == 36
    frame = panel_frame()
    short = frame[frame.id == "s4"]  # 30 points, fewer than the lookback
    got = padded.predict(data=short.tail(20))["y"].to_numpy()
    head = short.tail(20)
    fill = pd.concat([head.iloc[:1]] * 16)  # 16 copies of the first row make 36
    fill["time"] = pd.date_range(end=head.time.iloc[0], periods=17, freq="MS")[:-1]
    want = padded.predict(data=pd.concat([fill, head]))["y"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_cutoffs_of_a_short_series_agree_with_its_forecasts(padded):
    p = padded.predictor
    series = padded.series
    cut = np.array([[s_len] for s_len in (len(s) for s in series)])
    cut[4, 0] = 9  # 9 points of s4: 27 rows of padding
    at = p.forecast_at_cutoffs(series, cut)  # [S, 1, H, 1]
    for i, s in enumerate(series):
        k = int(cut[i, 0])
        np.testing.assert_allclose(
            at[i, 0], p.forecast_arrays([s.slice(0, k)], 6)[0], rtol=1e-5, atol=1e-5
        )
    with pytest.raises(DataError, match="fewer than 1 points before it"):
        p.forecast_at_cutoffs(series, np.array([[0]] * 5))


def test_a_padded_model_saves_loads_and_exports_with_the_same_forecasts(padded, tmp_path):
    import onnxruntime as ort

    from elman.export.onnx import read_metadata

    padded.save(tmp_path / "run")
    meta = json.loads((tmp_path / "run" / META).read_text())
    assert meta["sizes"]["padded"] is True
    back = Forecaster.load(tmp_path / "run")
    pd.testing.assert_frame_equal(back.predict(), padded.predict())
    assert [len(s) for s in back.series][3:] == [36 if n > 36 else n for n in LENGTHS[3:]]
    path = padded.export_onnx(tmp_path / "m.onnx")[0]  # checks onnxruntime against PyTorch
    doc = read_metadata(path)
    assert doc["padded"] is True and len(doc["context"][4]) == 36
    x = np.asarray(doc["context"], np.float64)  # [S, L, 1]; s4 padded with its first value
    s4 = panel_frame().query("id == 's4'")["y"].to_numpy()
    np.testing.assert_array_equal(x[4, :, 0], np.concatenate([np.full(6, s4[0]), s4]))
    run = ort.InferenceSession(str(path)).run(
        None, {"x": x, "series": np.arange(5, dtype=np.int64)}
    )[0]
    np.testing.assert_allclose(
        run[:, :, 0], padded.predict()["y"].to_numpy().reshape(5, 6), rtol=1e-5, atol=1e-4
    )


def test_sizes_saved_before_padding_existed_load_as_unpadded(padded, tmp_path):
    padded.save(tmp_path / "run")
    meta_path = tmp_path / "run" / META
    meta = json.loads(meta_path.read_text())
    del meta["sizes"]["padded"]  # what an older model.json holds
    assert Sizes(**meta["sizes"]).padded is False
    meta_path.write_text(json.dumps(seal({k: v for k, v in meta.items() if k != META_DIGEST_KEY},
                                         META_DIGEST_KEY)))  # fmt: skip
    with pytest.raises(CheckpointError, match="does not fit the"):  # s3 and s4: too short
        Forecaster.load(tmp_path / "run")


def test_training_reads_a_window_for_every_horizon_of_a_short_series():
    sizes = Sizes(lookback=36, horizon=6, val_size=15, season=12, padded=True)
    train = [385, 30, 12]
    pads = window_pads(train, sizes)
    assert pads == [0, 35, 35]
    assert MIN_TRAIN_WINDOWS == 8
    panel = Panel([torch.zeros(n, 1) for n in train], Layout(1), pads)
    starts = panel.starts(36, 6, [0, 0, 0], train)
    assert len(starts) == (385 - 42 + 1) + (30 - 6) + (12 - 6)
