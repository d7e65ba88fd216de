"""The Markdown text of a run report (``report.md``); :mod:`elman.runs.report` draws pictures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from elman.evaluation.baselines import BASELINES
from elman.runs.directory import RunFiles, averaging_text, ensemble_text

MODEL = "model"
COLUMNS = (
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("mape", "MAPE %"),
    ("smape", "sMAPE %"),
    ("mase", "MASE"),
)
FILES = {
    "config.toml": "resolved configuration (`elman train --config` reruns it)",
    "model.safetensors": "weights and the tail of each series",
    "model.json": "metadata: versions, configuration, scalers, data schema, calibration",
    "metrics.json": "all metrics as JSON",
    "history.csv": "loss, learning rate and speed per epoch",
    "holdout.csv": "hold-out forecasts of the model and baselines beside the actual values",
    "backtest_metrics.csv": "backtest metrics per method, averaged over folds",
    "backtest_folds.csv": "backtest metrics per fold and method",
    "backtest_forecasts.csv": "every backtest forecast, with intervals, beside the actual values",
    "actuals.csv": "the tail of the data drawn in the pictures",
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = float(value)
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"


def metrics_table(metrics: dict[str, dict[str, float]], model_label: str) -> list[str]:
    """A Markdown table, one row per method (the model first and in bold)."""
    cols = [c for c in COLUMNS if any(c[0] in m for m in metrics.values())]
    extra = sorted(
        {k for k in metrics.get(MODEL, {}) if k.startswith(("coverage_", "pinball_"))},
        key=lambda k: (int(k.split("_")[-1]), k),
    )
    head = ["method", *(c[1] for c in cols), *(_extra_name(k) for k in extra)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    order = [MODEL, *BASELINES, *(k for k in metrics if k != MODEL and k not in BASELINES)]
    for name in (k for k in order if k in metrics):
        row = metrics[name]
        label = f"**{model_label}**" if name == MODEL else name
        cells = [_fmt(row.get(k)) for k, _ in cols] + [_fmt(row.get(k)) for k in extra]
        if name == MODEL:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return lines


def _stamp(text: str) -> str:
    """A time stamp without a midnight clock time."""
    return text[:-9] if text.endswith(" 00:00:00") else text


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 100 else f"{value:.3g} s"


def _extra_name(key: str) -> str:
    kind, level = key.rsplit("_", 1)
    return f"{'coverage' if kind == 'coverage' else 'pinball'} {level}%"


def _verdict(metrics: dict[str, dict[str, float]]) -> str:
    model = metrics.get(MODEL, {}).get("mase")
    base = {
        k: v.get("mase") for k, v in metrics.items() if k != MODEL and v.get("mase") is not None
    }
    if model is None or not base:
        return ""
    best = min(base, key=lambda k: base[k])  # type: ignore[arg-type,return-value]
    verb = "beats" if model < base[best] else "does **not** beat"  # type: ignore[operator]
    return (
        f"On MASE the model {verb} the best baseline, {best} ({_fmt(model)} vs "
        f"{_fmt(base[best])}); MASE below 1 beats the in-sample seasonal-naive forecast."
    )


def _kind(files: RunFiles) -> str:
    """The model's label in tables: the network type, and whether it leads an ensemble."""
    return files.model_name + (" ensemble" if (files.meta or {}).get("ensemble") else "")


def _notes(section: dict[str, Any]) -> list[str]:
    """The section's notes on baselines that fell back, as a list, and a blank line."""
    notes = [str(n) for n in section.get("notes") or []]
    return [*(f"- {n}" for n in notes), ""] if notes else []


# after the lookback, when series shorter than it are padded (elman.data.prepare.window_pads)
PADDED = " (series shorter than it padded at the start with their first value)"


def _summary(files: RunFiles) -> list[str]:
    meta = files.meta or {}
    cfg = meta.get("config", {})
    data, mcfg, sizes = cfg.get("data", {}), cfg.get("model", {}), meta.get("sizes", {})
    series = meta.get("series", [])
    out = []
    if series:
        src = data.get("source") or "data given in Python"
        freq = series[0].get("freq") or "integer index"
        targets = ", ".join(f"`{t}`" for t in series[0].get("targets", []))
        out.append(
            f"- **Data**: `{src}`, {len(series)} series, target {targets}, frequency {freq}, "
            f"season {sizes.get('season', '?')}."
        )
    if mcfg:
        out.append(
            f"- **Model**: {mcfg.get('model')}, {mcfg.get('hidden_size')} hidden units x "
            f"{mcfg.get('num_layers')} layer(s), {mcfg.get('strategy')} strategy; lookback "
            f"{sizes.get('lookback')}{PADDED if sizes.get('padded') else ''}, horizon "
            f"{sizes.get('horizon')}, validation {sizes.get('val_size')} points."
        )
    if meta.get("ensemble"):
        out.append(
            "- **Ensemble** (weights chosen on validation windows by greedy selection; losses "
            f"are MASE-scaled): {ensemble_text(meta['ensemble'])}."
        )
    tr = meta.get("metrics") or {}
    if tr:
        best = tr.get("best_loss")
        stop = "stopped early" if tr.get("stopped_early") else "ran all epochs"
        averaging = averaging_text(tr)
        out.append(
            f"- **Training**: {tr.get('epochs_run')} epochs ({stop}); best validation loss "
            f"{_fmt(best)} at epoch {tr.get('best_epoch')}{'; ' + averaging if averaging else ''}."
        )
    return out


def _holdout(files: RunFiles, figures: dict[str, Path], notes: dict[str, Any]) -> list[str]:
    hold = (files.metrics or {}).get("holdout")
    if not hold:
        return []
    out = [f"## Hold-out test: the last {hold.get('test_size')} points", ""]
    out += [
        "Trained without these points, the model forecasts them in one go; every baseline "
        "forecasts the same points from the same history.",
        "",
    ]
    out += metrics_table(hold.get("metrics", {}), f"model ({_kind(files)})")
    out += ["", _verdict(hold.get("metrics", {})), "", *_notes(hold)]
    cov = notes.get("holdout_coverage")
    if cov:
        cal = notes.get("calibration", {})
        parts = [f"{lv}%: {k} of {n} points inside" for lv, (k, n) in sorted(cov.items())]
        out += [
            f"Conformal intervals (calibrated on {cal.get('windows')} {cal.get('source')} "
            f"windows): {'; '.join(parts)}.",
            "",
        ]
    if "forecast" in figures and files.backtest is None:
        out += [f"![Hold-out forecast against actual values]({figures['forecast'].name})", ""]
        bands = ", the red bands the prediction intervals" if cov else ""
        out += [
            "Shading: train (blue), validation (orange, used for early stopping), test "
            "(green, never seen in training). The red line is the model's forecast, the "
            f"dashed line the best baseline{bands}.",
            "",
        ]
    return out


def _backtest(files: RunFiles, figures: dict[str, Path]) -> list[str]:
    bt = (files.metrics or {}).get("backtest")
    if not bt:
        return []
    times = bt.get("cutoff_times") or [[]]
    first, last = (_stamp(times[0][0]), _stamp(times[0][-1])) if times[0] else ("", "")
    span = f" (first forecast {first}, last {last})" if times[0] else ""
    refit = bt.get("refit")
    out = [f"## Backtest: {bt['folds']} folds x {bt['horizon']} steps", ""]
    out += [
        f"Rolling origin: {bt['folds']} cutoffs per series, {bt['stride']} steps apart"
        f"{span}. Refit {refit}: {bt.get('fits')} model fit(s), "
        f"{bt.get('forecast_passes')} batched forecast pass(es). Metrics are averaged over "
        "series within a fold, then over folds.",
        "",
    ]
    out += metrics_table(bt.get("metrics", {}), f"model ({_kind(files)})")
    out += ["", _verdict(bt.get("metrics", {})), "", *_notes(bt)]
    iv = bt.get("intervals") or {}
    if iv.get("levels"):
        out += [
            f"Intervals: {iv.get('method')}; coverage is the share of actual values inside "
            "intervals calibrated on the other half of the folds.",
            "",
        ]
    tm = bt.get("timings") or {}
    if tm:
        keys = [k for k in ("fit_s", "forecast_s", "baselines_s", "metrics_s") if k in tm]
        parts = ", ".join(f"{k[:-2]} {_seconds(tm[k])}" for k in keys)
        out += [f"Time: {parts}.", ""]
    if "by_step" in figures:
        out += [f"![Backtest error by horizon step]({figures['by_step'].name})", ""]
    if "forecast" in figures:
        out += [f"![Backtest forecasts against actual values]({figures['forecast'].name})", ""]
        out += [
            "Shading: train and validation of the first fit, then the backtest folds "
            "(green). Non-overlapping folds are drawn, with their intervals.",
            "",
        ]
    return out


def report_markdown(files: RunFiles, figures: dict[str, Path], notes: dict[str, Any]) -> str:
    """The whole ``report.md``."""
    what = "backtest" if (files.metrics or {}).get("backtest") else "training run"
    out = [f"# elman {what}: {files.model_name}", "", *_summary(files), ""]
    out += _holdout(files, figures, notes)
    out += _backtest(files, figures)
    if "loss" in figures:
        out += ["## Training curve", "", f"![Training and validation loss]({figures['loss'].name})"]
        out += [
            "",
            "Mean squared error in scaled units; the dotted line marks the best epoch, "
            "whose weights were kept.",
            "",
        ]
    if "hidden" in figures:
        out += ["## Context neurons", "", f"![Hidden-state heatmap]({figures['hidden'].name})", ""]
        out += [
            "Top: the model's last input window. Bottom: each row is one hidden unit (the "
            "Elman network's context neurons), red positive, blue negative, sorted by their "
            "correlation with the input.",
            "",
        ]
    if "components" in figures:
        out += ["## Level and season", "", f"![Components]({figures['components'].name})", ""]
        out += [
            "The ES-RNN's smoothing of the first series: its values with the fitted level "
            "times the seasonal factor, the level, and the seasonal factor alone.",
            "",
        ]
    present = [name for name in FILES if (files.path / name).is_file()]
    if present:
        out += ["## Files", ""]
        out += [f"- `{name}`: {FILES[name]}" for name in present]
        out.append("")
    return "\n".join(out)
