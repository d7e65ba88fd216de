"""Pictures and a Markdown report for a run directory, from its files alone.

:func:`render_run` reads what ``elman train`` or ``elman backtest`` wrote and adds::

    RUN/
      actuals.csv          the tail of each series (written when the data is at hand)
      forecast.png         forecasts against actual values, train / validation / test shaded
      loss.png             training and validation loss per epoch
      backtest_by_step.png backtest error and interval coverage by horizon step (backtests)
      hidden_heatmap.png   context-neuron activity over the model's last input window
      components.png       esrnn: the learned level and seasonal factor (instead of the heatmap)
      report.md            the pictures and the metrics tables, for a person to read

``elman plot RUN`` calls it again, so the pictures can be redrawn at any time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from elman.data.prepare import scaled_tensor
from elman.data.series import Series
from elman.data.windows import features
from elman.errors import CheckpointError, ConfigError
from elman.evaluation.baselines import BASELINES
from elman.evaluation.scores import MODEL
from elman.files import ACTUALS, FIGURES, HISTORY, META, METRICS, REPORT, WEIGHTS, atomic_write_text
from elman.forecaster import Forecaster
from elman.runs.directory import RunFiles
from elman.runs.pictures import (
    ForecastPanel,
    plot_by_step,
    plot_components,
    plot_forecast,
    plot_hidden,
    plot_loss,
)
from elman.runs.report_text import report_markdown

log = logging.getLogger(__name__)

MAX_PANELS = 4  # series (or targets) drawn in forecast.png
FUTURE_CONTEXT = 4  # horizons of history drawn before a forecast (plot_future)
ACTUAL_POINTS = 1000  # points per series kept in actuals.csv and drawn
SHOWN_LEVELS = (80, 95)  # interval bands drawn when the calibration has them


def write_actuals(run_dir: str | Path, series: list[Series]) -> Path:
    """``actuals.csv``: the last ``ACTUAL_POINTS`` target values of the first few series.

    Columns: ``series`` (when the data has ids), ``position`` (row in the full series),
    ``time`` and one column per target.
    """
    frames = []
    for s in series[:MAX_PANELS]:
        start = max(0, len(s) - ACTUAL_POINTS)
        frame = pd.DataFrame(s.target_values[start:], columns=s.targets)
        frame.insert(0, "time", [str(v) for v in s.index[start:]])
        frame.insert(0, "position", np.arange(start, len(s)))
        if s.series_id is not None:
            frame.insert(0, "series", s.series_id)
        frames.append(frame)
    path = Path(run_dir) / ACTUALS
    atomic_write_text(path, pd.concat(frames).to_csv(index=False))
    return path


def render_run(run_dir: str | Path, series: list[Series] | None = None) -> list[Path]:
    """Draw every picture the files of ``run_dir`` allow and write ``report.md``.

    Args:
        run_dir: a directory written by ``elman train`` or ``elman backtest``.
        series: the run's data; when given, its tail is saved as ``actuals.csv`` first.

    Returns:
        The files written.
    """
    run = Path(run_dir)
    if not run.exists():
        raise ConfigError(f"run directory '{run}' does not exist")
    if not run.is_dir():
        raise ConfigError(f"'{run}' is a file; give a run directory (from elman train/backtest)")
    written = [write_actuals(run, series)] if series else []
    files = RunFiles.read(run)
    if files.meta is None and files.metrics is None and files.history is None:
        raise ConfigError(
            f"'{run}' holds no {META}, {METRICS} or {HISTORY}; give a run directory written "
            "by 'elman train' or 'elman backtest'"
        )
    forecaster = Forecaster.load(run) if files.meta and (run / WEIGHTS).is_file() else None
    figures: dict[str, Path] = {}
    notes: dict[str, Any] = {}
    if files.history is not None and len(files.history):
        figures["loss"] = _loss(files)
    panels = _panels(files, forecaster, notes)
    if panels:
        kind = "backtest" if files.backtest is not None else "hold-out"
        figures["forecast"] = plot_forecast(
            panels,
            run / FIGURES["forecast"],
            title=f"{files.model_name}: {kind} forecasts against actual values",
            ylabel=_ylabel(files),
        )
    bt = _backtest_block(files)
    if bt and bt.get("by_step"):
        figures["by_step"] = _by_step(files, bt)
    if forecaster is not None:
        components = forecaster.predictor.components(forecaster.series[0])
        if components is not None:
            figures["components"] = _components(run, forecaster, components)
        else:
            figures["hidden"] = _hidden(run, forecaster)
    report = run / REPORT
    atomic_write_text(report, report_markdown(files, figures, notes))
    return [*written, *figures.values(), report]


# ----------------------------------------------------------------------------- figures


def _loss(files: RunFiles) -> Path:
    h = files.history
    assert h is not None
    val = pd.to_numeric(h["val_loss"], errors="coerce").to_numpy() if "val_loss" in h else None
    return plot_loss(
        h["epoch"].to_numpy(),
        pd.to_numeric(h["train_loss"], errors="coerce").to_numpy(),
        val,
        files.path / FIGURES["loss"],
        title=f"{files.model_name}: training curve",
    )


def _backtest_block(files: RunFiles) -> dict[str, Any] | None:
    """The ``backtest`` entry of ``metrics.json``, checked; ``None`` when there is none.

    Raises:
        CheckpointError: the entry lacks a count the pictures need, or a per-step table.
    """
    bt = (files.metrics or {}).get("backtest")
    if bt is None and files.backtest is None:
        return None
    where = files.path / METRICS
    if not isinstance(bt, dict):
        raise CheckpointError(
            f"{where} has no 'backtest' entry beside backtest_forecasts.csv; it was edited or "
            "damaged; rerun 'elman backtest' or restore an intact copy"
        )
    for key in ("folds", "horizon", "stride"):
        value = bt.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(
                f"{where}: backtest.{key} is {value!r}, not a count >= 1; it was edited or "
                "damaged; rerun 'elman backtest' or restore an intact copy"
            )
    steps = bt.get("by_step", {})
    if not isinstance(steps, dict) or not all(isinstance(v, dict) for v in steps.values()):
        raise CheckpointError(
            f"{where}: backtest.by_step is not a table of metrics per method; rerun "
            "'elman backtest' or restore an intact copy"
        )
    return bt


def _by_step(files: RunFiles, bt: dict[str, Any]) -> Path:
    mase = all("mase" in d for d in bt["by_step"].values()) and len(bt.get("series", [])) > 1
    key, label = ("mase", "MASE") if mase else ("mae", "MAE")
    steps = bt["by_step"]
    order = [MODEL, *BASELINES, *(m for m in steps if m != MODEL and m not in BASELINES)]
    errors = {m: np.asarray(steps[m][key], dtype=float) for m in order if m in steps}
    cov = bt.get("intervals", {}).get("coverage_by_step") or {}
    return plot_by_step(
        errors,
        files.path / FIGURES["by_step"],
        metric=label,
        coverage={int(k): np.asarray(v, dtype=float) for k, v in cov.items()},
        title=f"{files.model_name}: backtest of {bt['folds']} folds, horizon {bt['horizon']}",
    )


def _components(
    run: Path, forecaster: Forecaster, components: tuple[np.ndarray, np.ndarray, int]
) -> Path:
    """The learned level and seasonal factor of the stored history of series 0."""
    level, season, start = components
    s = forecaster.series[0].slice(start, None)
    return plot_components(
        [str(v) for v in s.index],
        s.target_values[:, 0],
        level,
        season,
        run / FIGURES["components"],
        title=f"esrnn: learned level and seasonal factor of {s.name}",
        ylabel=s.targets[0],
    )


@torch.no_grad()
def _hidden(run: Path, forecaster: Forecaster) -> Path:
    """Hidden activity of the top layer over the stored last input window of series 0."""
    assert forecaster.model is not None and forecaster.layout is not None
    s = forecaster.series[0]
    layout = forecaster.layout
    x = features(scaled_tensor(s, forecaster.scaler_for(s)), layout)  # [L, C_in]
    x = torch.nan_to_num(x)  # the last row's unknown future covariates: 0 (the scaled mean)
    if forecaster.config.data.norm == "last":
        x[:, : layout.n_targets] -= x[-1, : layout.n_targets].clone()
    hidden = forecaster.model.eval().hidden_sequence(x[None])[0].numpy()  # [L, H]
    name = forecaster.config.model.model
    return plot_hidden(
        [str(v) for v in s.index],
        s.target_values[:, 0],
        hidden,
        run / FIGURES["hidden"],
        title=f"{name}: context neurons (top-layer hidden state) over the last "
        f"{len(s)} input steps",
        ylabel=s.targets[0],
    )


def _ylabel(files: RunFiles) -> str:
    targets = (files.meta or {}).get("series", [{}])[0].get("targets") if files.meta else None
    return str(targets[0]) if targets else "value"


# ----------------------------------------------------------------------------- panels


def plot_future(
    series: list[Series], table: pd.DataFrame, path: str | Path, title: str = "forecast"
) -> Path:
    """A picture of a forecast: the end of each series, then its forecast and any bands.

    Args:
        series: the histories the forecast continues (``Forecaster.predict``'s ``data``).
        table: what ``Forecaster.predict`` returned (with ``<target>_lower_L`` /
            ``<target>_upper_L`` columns when it has intervals).
        path: where to write the PNG.
        title: the figure title.

    One panel per (series, target), at most ``MAX_PANELS``; each shows the last
    ``FUTURE_CONTEXT`` horizons of history.
    """
    panels = []
    for s in series:
        rows = table if s.series_id is None else table[table.iloc[:, 0] == s.series_id]
        horizon = len(rows)
        tail = s.tail(min(len(s), FUTURE_CONTEXT * horizon))
        x_past = _x_values(pd.Series(tail.index.astype(str)))
        x_next = _x_values(pd.Series(rows.index.astype(str)))
        for j, target in enumerate(s.targets):
            prefix = f"{target}_lower_"
            levels = sorted(int(str(c)[len(prefix) :]) for c in rows if str(c).startswith(prefix))
            bands: list[tuple[int, Sequence[Any], np.ndarray, np.ndarray]] = [
                (lv, x_next, rows[f"{target}_lower_{lv}"].to_numpy(float),
                 rows[f"{target}_upper_{lv}"].to_numpy(float))
                for lv in levels
            ]  # fmt: skip
            name = target if s.series_id is None else f"{s.series_id}: {target}"
            panels.append(
                ForecastPanel(
                    name,
                    x_past,
                    tail.target_values[:, j],
                    lines=[(MODEL, x_next, rows[target].to_numpy(float))],
                    bands=bands,
                    ylabel=target,
                )  # fmt: skip
            )
    return plot_forecast(panels[:MAX_PANELS], path, title)


def _x_values(times: pd.Series) -> list[Any]:
    """Time strings as timestamps when they all parse, integers when they are integers."""
    text = times.astype(str)
    if text.str.fullmatch(r"-?\d+").all():
        return [int(v) for v in text]
    try:
        return list(pd.to_datetime(text, format="mixed"))
    except (ValueError, TypeError):
        try:
            return [p.to_timestamp() for p in pd.PeriodIndex(text.tolist())]
        except (ValueError, TypeError):
            return list(range(len(text)))


def _edge(xs: list[Any], i: int) -> Any:
    """The boundary just before point ``i`` (half way to the previous point)."""
    if i <= 0:
        return xs[0]
    if i >= len(xs):
        return xs[-1]
    return xs[i - 1] + (xs[i] - xs[i - 1]) / 2


def _pairs(frame: pd.DataFrame) -> list[tuple[str | None, str]]:
    """(series id, target) pairs of a long table, first ``MAX_PANELS``."""
    ids = list(dict.fromkeys(frame["series"])) if "series" in frame else [None]
    targets = list(dict.fromkeys(frame["target"]))
    return [(i, t) for i in ids for t in targets][:MAX_PANELS]


def _rows(frame: pd.DataFrame, sid: str | None, target: str | None = None) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    if sid is not None and "series" in frame:
        mask &= (frame["series"] == sid).to_numpy()
    if target is not None and "target" in frame:
        mask &= (frame["target"] == target).to_numpy()
    return frame[mask]


def _best_baseline(metrics: dict[str, dict[str, float]]) -> str | None:
    scores = {
        k: v.get("mase") for k, v in metrics.items() if k != MODEL and v.get("mase") is not None
    }
    return min(scores, key=lambda k: scores[k]) if scores else None  # type: ignore[arg-type,return-value]


def _panels(
    files: RunFiles, forecaster: Forecaster | None, notes: dict[str, Any]
) -> list[ForecastPanel]:
    if files.backtest is not None:
        return [_backtest_panel(files, sid, t) for sid, t in _pairs(files.backtest)]
    if files.holdout is not None:
        pairs = _pairs(files.holdout)
        return [_holdout_panel(files, forecaster, sid, t, notes) for sid, t in pairs]
    return []


def _actual_frame(files: RunFiles, sid: str | None, target: str, fallback: pd.DataFrame) -> Any:
    """``(times, values, positions)`` of the drawn stretch of one series."""
    if files.actuals is not None and target in files.actuals:
        a = _rows(files.actuals, sid)
        if len(a):
            return a["time"].astype(str), a[target].to_numpy(float), a["position"].to_numpy()
    return fallback["time"].astype(str), fallback["actual"].to_numpy(float), None


def _holdout_panel(
    files: RunFiles,
    forecaster: Forecaster | None,
    sid: str | None,
    target: str,
    notes: dict[str, Any],
) -> ForecastPanel:
    hold = _rows(files.holdout, sid, target)  # type: ignore[arg-type]
    times, actual, _ = _actual_frame(files, sid, target, hold)
    xs = _x_values(pd.concat([times, hold["time"]], ignore_index=True))
    x, x_test = xs[: len(times)], xs[len(times) :]
    n, test = len(times), len(hold)
    val = int((files.meta or {}).get("sizes", {}).get("val_size", 0))
    spans = [("train", x[0], _edge(x, n - test - val))]
    if val:
        spans.append(("validation", _edge(x, n - test - val), _edge(x, n - test)))
    spans.append(("test", _edge(x, n - test), x[-1]))
    lines: list[tuple[str, Any, np.ndarray]] = [
        (f"{MODEL} ({files.model_name})", x_test, hold[MODEL].to_numpy(float))
    ]
    best = _best_baseline((files.metrics or {}).get("holdout", {}).get("metrics", {}))
    if best and best in hold:
        lines.append((f"{best} (best baseline)", x_test, hold[best].to_numpy(float)))
    bands = _holdout_bands(forecaster, sid, target, hold, x_test, notes)
    title = target if sid is None else f"{sid}: {target}"
    return ForecastPanel(title, x, actual, spans, lines, bands, ylabel=target)


def _holdout_bands(
    forecaster: Forecaster | None,
    sid: str | None,
    target: str,
    hold: pd.DataFrame,
    x_test: list[Any],
    notes: dict[str, Any],
) -> list[tuple[int, Any, np.ndarray, np.ndarray]]:
    """Conformal bands around the hold-out forecast from the model's stored calibration."""
    cal = forecaster.calibration if forecaster is not None else None
    if forecaster is None or cal is None or cal.horizon < len(hold):
        return []
    match = [s for s in forecaster.series if (s.series_id is None) == (sid is None)]
    match = [s for s in match if sid is None or str(s.series_id) == str(sid)]
    if not match or target not in match[0].targets:
        return []
    j = match[0].targets.index(target)
    scale = np.asarray(forecaster.scaler_for(match[0]).scale)[j]
    point, actual = hold[MODEL].to_numpy(float), hold["actual"].to_numpy(float)
    bands = []
    for level in (lv for lv in SHOWN_LEVELS if lv in cal.quantiles):
        width = cal.quantiles[level][: len(hold), j] * scale
        lo, hi = point - width, point + width
        bands.append((level, x_test, lo, hi))
        inside = notes.setdefault("holdout_coverage", {}).setdefault(level, [0, 0])
        inside[0] += int(((actual >= lo) & (actual <= hi)).sum())
        inside[1] += len(actual)
    notes["calibration"] = {"source": cal.source, "windows": cal.windows}
    return bands


def _backtest_panel(files: RunFiles, sid: str | None, target: str) -> ForecastPanel:
    fc = _rows(files.backtest, sid, target)  # type: ignore[arg-type]
    bt = _backtest_block(files) or {}
    times, actual, pos = _actual_frame(files, sid, target, fc[fc["fold"] == fc["fold"].max()])
    x = _x_values(times)
    where = {int(p): i for i, p in enumerate(pos)} if pos is not None else {}
    first_cut = int(fc["cutoff"].min())
    val = int((files.meta or {}).get("sizes", {}).get("val_size", 0))
    start = pos[0] if pos is not None else first_cut
    spans = []
    if first_cut - val > start:
        spans.append(("train", x[0], _edge(x, where.get(first_cut - val, 0))))
    if val and first_cut > start:
        spans.append(
            (
                "validation",
                _edge(x, where.get(max(first_cut - val, start), 0)),
                _edge(x, where.get(first_cut, 0)),
            )
        )
    spans.append(("test", _edge(x, where.get(first_cut, 0)), x[-1]))
    every = max(1, -(-int(bt["horizon"]) // max(1, int(bt["stride"]))))
    last = int(fc["fold"].max())
    best = _best_baseline(bt.get("metrics", {}))
    lines: list[tuple[str, Any, np.ndarray]] = []
    bands: list[tuple[int, Any, np.ndarray, np.ndarray]] = []
    for fold in range(last, -1, -every):
        rows = fc[fc["fold"] == fold]
        if where:
            steps = zip(rows["cutoff"], rows["step"], strict=True)
            found = [where.get(int(k) + int(s) - 1) for k, s in steps]
            if any(i is None for i in found):
                break  # this fold starts before the saved stretch of actual values
            idx = [int(i) for i in found if i is not None]
        else:  # no actuals.csv: only the last fold, over its own actual values
            idx = list(range(len(rows)))
        xf = [x[i] for i in idx]
        lines.append((f"{MODEL} ({files.model_name})", xf, rows[MODEL].to_numpy(float)))
        if best:
            lines.append((f"{best} (best baseline)", xf, rows[best].to_numpy(float)))
        for level in SHOWN_LEVELS:
            lo, hi = f"{MODEL}_lower_{level}", f"{MODEL}_upper_{level}"
            if lo in rows and hi in rows:
                bands.append((level, xf, rows[lo].to_numpy(float), rows[hi].to_numpy(float)))
        if not where:
            break
    title = target if sid is None else f"{sid}: {target}"
    return ForecastPanel(title, x, actual, spans, lines, bands, ylabel=target)
