"""Property tests: whatever the values, options or files, elman answers or raises ElmanError.

They complement ``test_data_properties.py`` (the readers and ``WindowDataset``): here the
windows the trainer actually draws (``Panel.starts`` / ``make_batch``), whole fits on odd
series with odd options, hand-written TOML configs, and edited model metadata.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from elman.checkpoint import META_DIGEST_KEY, seal
from elman.config import Config
from elman.data.windows import Layout, Panel, make_batch
from elman.errors import CheckpointError, ElmanError
from elman.files import META
from elman.forecaster import Forecaster

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ training windows
@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    lookback=st.integers(1, 10),
    horizon=st.integers(1, 5),
    cut=st.floats(0, 1),
    strategy=st.sampled_from(["direct", "recursive"]),
)
def test_windows_stay_inside_their_series_and_split(lengths, lookback, horizon, cut, strategy):
    # Values encode (series, row) so that every gathered cell can be traced back.
    arrays_ = [torch.tensor([[i * 1000.0 + r] for r in range(n)]) for i, n in enumerate(lengths)]
    panel = Panel(arrays_, Layout(1))
    lo = [int(cut * n) for n in lengths]
    hi = list(lengths)
    starts = panel.starts(lookback, horizon, lo, hi)
    expected = sum(
        max(0, n - lookback - horizon - max(0, lo_i - lookback) + 1)
        for n, lo_i in zip(lengths, lo, strict=True)
    )
    assert len(starts) == expected and len(set(starts.tolist())) == len(starts)
    if len(starts) == 0:
        return
    b = make_batch(panel, torch.from_numpy(starts), lookback, horizon, strategy, "none")
    span = lookback if strategy == "direct" else lookback + horizon - 1
    assert b.x.shape == (len(starts), span, 1)
    series_of_x = (b.x // 1000).squeeze(-1)
    series_of_y = (b.y // 1000).squeeze(-1)
    assert (series_of_x == series_of_x[:, :1]).all()  # inputs never cross series
    assert (series_of_y == series_of_x[:, :1]).all()  # targets from the same series
    rows_y = (b.y % 1000).squeeze(-1)
    s_idx = series_of_x[:, 0].long()
    assert (rows_y[:, -1] < torch.tensor(hi)[s_idx]).all()  # inside the split's end
    if strategy == "direct":
        assert (rows_y[:, 0] >= torch.tensor(lo)[s_idx]).all()  # targets after its start
        assert (rows_y[:, 0] == (b.x % 1000)[:, -1, 0] + 1).all()  # no gap, no overlap


# ------------------------------------------------------------------ whole fits
VALUES = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 1e-300, -1e-300, 1e-3, 1e150, -1e150, 1e300, 1.7e308]),
)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a warning would reach the CLI's stderr
@SETTINGS
@given(
    values=arrays(np.float64, st.integers(1, 70), elements=VALUES),
    horizon=st.integers(-1, 12),
    lookback=st.one_of(st.none(), st.integers(-1, 80)),
    val_size=st.one_of(st.none(), st.integers(-1, 30)),
    model=st.sampled_from(["elman", "gru", "tcn"]),
    strategy=st.sampled_from(["direct", "recursive"]),
)
def test_fit_gives_finite_forecasts_or_one_elman_error(
    values, horizon, lookback, val_size, model, strategy
):
    try:
        f = Forecaster(
            model,
            horizon=horizon,
            lookback=lookback,
            val_size=val_size,
            strategy=strategy,
            hidden_size=3,
            epochs=1,
            batch_size=64,
            progress=False,
        ).fit(values)
        out = f.predict()
    except ElmanError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert out.shape == (horizon, 1)
    assert np.isfinite(out.to_numpy()).all()


# ------------------------------------------------------------------ hand-written configs
TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.one_of(st.text(max_size=4), st.integers()), max_size=3),
)
KEYS = st.sampled_from(
    ["horizon", "lookback", "target", "lr", "epochs", "dropout", "model", "hidden_size",
     "scaler", "seed", "clip", "teacher_forcing", "calendar", "bogus", "max_retries"]
)  # fmt: skip


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"  # type: ignore[attr-defined]


@SETTINGS
@given(
    sections=st.dictionaries(
        st.sampled_from(["data", "model", "train", "extra"]),
        st.dictionaries(KEYS, TOML_VALUES, max_size=4),
        max_size=3,
    )
)
def test_any_toml_config_is_valid_or_one_config_error(sections) -> None:
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
        for name, table in sections.items()
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cfg = Config.from_toml(path)
        except ElmanError as exc:
            assert "\n" not in str(exc).strip("\n")
            return
    assert Config.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------ edited model metadata
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("saved")
    y = np.sin(np.arange(120) / 4)
    Forecaster("lstm", horizon=3, lookback=10, hidden_size=4, epochs=1, progress=False).fit(y).save(
        out
    )
    return out


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    if isinstance(obj, dict):
        return [prefix] + [p for k, v in obj.items() for p in _paths(v, (*prefix, k))]
    if isinstance(obj, list):
        return [prefix] + [p for i, v in enumerate(obj) for p in _paths(v, (*prefix, i))]
    return [prefix]


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(-1e300, 1e300, allow_nan=False),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=3),
    st.just({}),
)


@SETTINGS
@given(data=st.data())
def test_edited_and_resealed_metadata_loads_or_raises_checkpoint_error(saved: Path, data) -> None:
    meta = json.loads((saved / META).read_text())
    meta.pop(META_DIGEST_KEY)
    paths = [p for p in _paths(meta) if p and p[0] not in ("weights_sha256",)]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = data.draw(JSON_VALUES)
        paths = [p for p in _paths(meta) if p and p[0] != "weights_sha256"]
    _load_resealed_and_predict(saved, meta)


def _load_resealed_and_predict(saved: Path, meta: dict) -> str | None:
    """Reseal ``meta`` beside the saved weights, load and predict; the error text, if any.

    Loading may refuse with a one-line CheckpointError and predicting with an ElmanError;
    anything else (a crash, a non-finite or non-numeric forecast) fails the test.
    """
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "model.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
        (d / META).write_text(json.dumps(seal(meta, META_DIGEST_KEY)))
        try:
            f = Forecaster.load(d)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            return str(exc)
        try:
            out = f.predict()
        except ElmanError as exc:
            return str(exc)
    values = out[f.series[0].targets].to_numpy()
    assert values.dtype.kind == "f" and np.isfinite(values).all()
    return None


@pytest.mark.parametrize("bad", [[], {}, [1, 2], {"a": 1}])
def test_a_resealed_series_id_that_is_not_one_value_is_refused(saved: Path, bad: object) -> None:
    meta = json.loads((saved / META).read_text())
    meta.pop(META_DIGEST_KEY)
    meta["series"][0]["series_id"] = bad
    error = _load_resealed_and_predict(saved, meta)
    assert error is not None and "series id" in error and "one value" in error


@pytest.mark.parametrize(
    "section,key,bad",
    [("layout", "n_covariates", None), ("layout", "n_targets", True), ("layout", "n_future", -1),
     ("sizes", "lookback", "10"), ("sizes", "horizon", 0), ("sizes", "season", 1.5)],
)  # fmt: skip
def test_resealed_sizes_and_layout_must_be_counts(saved: Path, section: str, key: str, bad) -> None:
    meta = json.loads((saved / META).read_text())
    meta.pop(META_DIGEST_KEY)
    meta[section][key] = bad
    error = _load_resealed_and_predict(saved, meta)
    assert error is not None and "metadata is incomplete or invalid" in error
    assert f"{key} must be an integer" in error


@pytest.mark.parametrize("good", ["shop 7", 7])
def test_a_resealed_series_id_of_one_value_forecasts_under_it(saved: Path, good: object) -> None:
    meta = json.loads((saved / META).read_text())
    meta.pop(META_DIGEST_KEY)
    meta["series"][0]["series_id"] = good
    assert _load_resealed_and_predict(saved, meta) is None
