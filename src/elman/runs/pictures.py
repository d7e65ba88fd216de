"""Matplotlib figures, drawn off-screen (Agg) and saved as PNG. Nothing here opens a window.

The functions take plain arrays and write one PNG each; :mod:`elman.runs.report` reads a run
directory and feeds them:

* :func:`plot_forecast`: actual values with train / validation / test shading, forecasts
  and interval bands, one panel per series;
* :func:`plot_loss`: training and validation loss per epoch;
* :func:`plot_by_step`: backtest error (and interval coverage) by horizon step;
* :func:`plot_hidden`: context-neuron activity over time as a heatmap under the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display is ever needed

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from elman.files import atomic_write_bytes  # noqa: E402

ACTUAL_COLOR = "#222222"
MODEL_COLOR = "#d62728"
SPAN_COLORS = {"train": "#e8eef6", "validation": "#fdebd0", "test": "#e3f2e1"}
METHOD_COLORS = {
    "model": MODEL_COLOR,
    "naive": "#7f7f7f",
    "seasonal_naive": "#1f77b4",
    "drift": "#9467bd",
    "linear_ar": "#2ca02c",
}


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG atomically and return the path."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def plot_tutorial(
    t: list[float],
    x: list[float],
    predictions: dict[str, list[float]],
    path: str | Path,
) -> Path:
    """The seed's picture: actual values at ``t[:-1]`` and one-step predictions at ``t[1:]``.

    Args:
        t: the 21 time points.
        x: the 20 input values.
        predictions: label -> 20 one-step predictions (one entry per training method).
        path: where to write the PNG.
    """
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    ax.scatter(t[:-1], x, s=90, label="Actual", color="#9ecae1", edgecolor="#3182bd")
    markers = ["o", "x", "^", "s"]
    for i, (label, preds) in enumerate(predictions.items()):
        ax.scatter(t[1:], preds, label=label, marker=markers[i % len(markers)], s=28)
    ax.set_xlabel("t")
    ax.set_ylabel("sin(t)")
    ax.set_title("Elman network, 6 context neurons: next-value prediction")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- forecast


@dataclass
class ForecastPanel:
    """What one panel of :func:`plot_forecast` shows.

    Attributes:
        title: panel title (series name).
        x: time stamps or positions of ``actual`` ``[T]``.
        actual: observed values ``[T]``.
        spans: ``(label, start, end)`` shaded regions; labels ``train``, ``validation``,
            ``test`` get fixed colours.
        lines: ``(label, x, y)`` forecast segments; segments sharing a label share a colour
            and one legend entry.
        bands: ``(level, x, lower, upper)`` interval segments, shaded around the model.
        ylabel: the panel's y-axis label (its target), when it differs between panels.
    """

    title: str
    x: Sequence[Any]
    actual: np.ndarray
    spans: list[tuple[str, Any, Any]] = field(default_factory=list)
    lines: list[tuple[str, Sequence[Any], np.ndarray]] = field(default_factory=list)
    bands: list[tuple[int, Sequence[Any], np.ndarray, np.ndarray]] = field(default_factory=list)
    ylabel: str | None = None  # this panel's target; default the figure's ``ylabel``


def _band_alpha(level: int, levels: list[int]) -> float:
    """Wider intervals lighter: the narrowest level 0.35, the widest 0.15."""
    if len(levels) < 2:
        return 0.25
    rank = sorted(levels, reverse=True).index(level)
    return 0.15 + 0.2 * rank / (len(levels) - 1)


def _draw_panel(ax: Any, panel: ForecastPanel) -> None:
    for label, start, end in panel.spans:
        ax.axvspan(start, end, color=SPAN_COLORS.get(label, "#eeeeee"), lw=0, label=label)
    levels = sorted({b[0] for b in panel.bands})
    seen: set[str] = set()
    for level, x, lo, hi in sorted(panel.bands, key=lambda b: -b[0]):  # widest first
        name = f"{level}% interval"
        ax.fill_between(
            x,
            lo,
            hi,
            color=MODEL_COLOR,
            alpha=_band_alpha(level, levels),
            lw=0,
            label=None if name in seen else name,
        )
        seen.add(name)
    ax.plot(panel.x, panel.actual, color=ACTUAL_COLOR, lw=1.1, label="actual")
    for label, x, y in panel.lines:
        key = label.split(" ")[0]
        color = METHOD_COLORS.get(key, "#ff7f0e")
        model = key == "model"
        ax.plot(
            x,
            y,
            color=color,
            lw=1.8 if model else 1.3,
            ls="-" if model else "--",
            label=None if label in seen else label,
        )
        seen.add(label)
    ax.set_title(panel.title, fontsize=10, loc="left")
    ax.grid(alpha=0.25)
    ax.margins(x=0.01)


def plot_forecast(
    panels: Sequence[ForecastPanel], path: str | Path, title: str, ylabel: str = "value"
) -> Path:
    """Forecasts against actual values, one stacked panel per series.

    Args:
        panels: up to a handful of :class:`ForecastPanel` (one per series).
        path: where to write the PNG.
        title: figure title.
        ylabel: y-axis label (the target's name and unit).
    """
    n = len(panels)
    fig = Figure(figsize=(10, 3.0 * n + 0.9), layout="constrained")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        _draw_panel(ax, panel)
        ax.set_ylabel(panel.ylabel or ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # spans and lines absent from the first panel still get an entry
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=9)
    fig.suptitle(title, fontsize=12)
    if _is_time(panels[0].x):
        for ax in axes:
            for tick in ax.get_xticklabels():
                tick.set_rotation(0)
    return save_figure(fig, path)


def _is_time(x: Sequence[Any]) -> bool:
    return len(x) > 0 and hasattr(x[0], "year")


# ----------------------------------------------------------------------------- loss


def plot_loss(
    epochs: np.ndarray,
    train_loss: np.ndarray,
    val_loss: np.ndarray | None,
    path: str | Path,
    title: str = "Training curve",
) -> Path:
    """Training and validation loss per epoch, log scale, with the best epoch marked.

    Args:
        epochs: 1-based epoch numbers ``[E]``.
        train_loss: mean training loss per epoch ``[E]`` (scaled units).
        val_loss: validation loss per epoch ``[E]`` (NaN where not measured), or ``None``.
        path: where to write the PNG.
        title: figure title.
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.plot(epochs, train_loss, color="#1f77b4", lw=1.6, label="train")
    has_val = val_loss is not None and np.isfinite(val_loss).any()
    if has_val and val_loss is not None:
        ax.plot(epochs, val_loss, color="#ff7f0e", lw=1.6, label="validation")
        best = int(np.nanargmin(val_loss))
        ax.axvline(epochs[best], color="#555555", ls=":", lw=1)
        ax.scatter([epochs[best]], [val_loss[best]], color="#ff7f0e", zorder=3, s=30)
        late = best > 0.75 * (len(epochs) - 1)  # put the label on the side with room
        ax.annotate(
            f"best epoch {int(epochs[best])}",
            (epochs[best], val_loss[best]),
            textcoords="offset points",
            xytext=(-8, 10) if late else (8, 10),
            ha="right" if late else "left",
            fontsize=9,
        )
    values = np.concatenate([train_loss, val_loss if has_val and val_loss is not None else []])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel("loss (MSE, scaled units)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- by step


def plot_by_step(
    errors: Mapping[str, np.ndarray],
    path: str | Path,
    metric: str = "MAE",
    coverage: Mapping[int, np.ndarray] | None = None,
    title: str = "Backtest error by horizon step",
) -> Path:
    """Error per horizon step for every method, and interval coverage per step.

    Args:
        errors: method name to error per step ``[H]``; ``model`` is drawn bold.
        path: where to write the PNG.
        metric: the error's name, for the axis label.
        coverage: level (percent) to empirical coverage per step ``[H]`` in [0, 1].
        title: figure title.
    """
    ncols = 2 if coverage else 1
    fig = Figure(figsize=(6.2 * ncols, 4))
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    ax = axes[0]
    for name, err in errors.items():
        steps = np.arange(1, len(err) + 1)
        model = name == "model"
        ax.plot(
            steps,
            err,
            marker="o" if len(err) <= 30 else None,
            ms=3,
            lw=2.2 if model else 1.2,
            ls="-" if model else "--",
            color=METHOD_COLORS.get(name),
            label=name,
            zorder=3 if model else 2,
        )
    ax.set_xlabel("horizon step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by step (mean over folds)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    if coverage:
        _coverage_panel(axes[1], coverage)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _coverage_panel(cax: Any, coverage: Mapping[int, np.ndarray]) -> None:
    """Empirical coverage per step of each level, with the nominal level dotted."""
    for i, (level, cov) in enumerate(sorted(coverage.items())):
        color = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"][i % 4]
        steps = np.arange(1, len(cov) + 1)
        cax.plot(
            steps,
            cov,
            marker="o" if len(cov) <= 30 else None,
            ms=3,
            color=color,
            label=f"{level}% interval",
        )
        cax.axhline(level / 100, color=color, ls=":", lw=1)
    low = min(min(float(np.nanmin(c)) for c in coverage.values()), min(coverage) / 100)
    cax.set_ylim(max(0.0, np.floor(low * 10 - 1) / 10), 1.02)  # room below the lowest
    cax.set_xlabel("horizon step")
    cax.set_ylabel("empirical coverage")
    cax.set_title("Interval coverage by step (dotted: nominal)", fontsize=10)
    cax.grid(alpha=0.3)
    cax.legend(fontsize=9, loc="lower left")


# ----------------------------------------------------------------------------- hidden


def plot_components(
    x: Sequence[Any],
    values: np.ndarray,
    level: np.ndarray,
    season: np.ndarray,
    path: str | Path,
    title: str = "Learned level and seasonal factor",
    ylabel: str = "value",
) -> Path:
    """An ES-RNN's smoothing of one series: the values with level x season, the level, and
    the seasonal factor, on one time axis.

    Args:
        x: time stamps or positions ``[n]``.
        values: the series ``[n]``.
        level: the smoothed level ``[n]``.
        season: the combined seasonal factor ``[n]`` (1 = no seasonal effect).
        path: where to write the PNG.
        title: figure title.
        ylabel: label of the value axes.
    """
    fig = Figure(figsize=(10, 6.5))
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1.2, 1]})
    pos = np.arange(len(values))
    axes[0].plot(pos, values, color=ACTUAL_COLOR, lw=1.0, label="actual")
    axes[0].plot(pos, level * season, color=MODEL_COLOR, lw=1.0, label="level x season")
    axes[0].set_ylabel(ylabel)
    axes[0].legend(loc="upper left", frameon=False)
    axes[0].set_title(title)
    axes[1].plot(pos, level, color="#1f77b4", lw=1.3)
    axes[1].set_ylabel("level")
    axes[2].plot(pos, season, color="#2ca02c", lw=1.0)
    axes[2].axhline(1.0, color="#999999", lw=0.7, ls=":")
    axes[2].set_ylabel("seasonal factor")
    ticks = np.unique(np.linspace(0, len(pos) - 1, min(8, len(pos))).astype(int))
    axes[2].set_xticks(ticks)
    axes[2].set_xticklabels([str(x[i]) for i in ticks], rotation=20, fontsize=8)
    return save_figure(fig, path)


def plot_hidden(
    x: Sequence[Any],
    signal: np.ndarray,
    hidden: np.ndarray,
    path: str | Path,
    title: str = "Context neurons over the last input window",
    ylabel: str = "input",
) -> Path:
    """The input signal above a heatmap of hidden-state activity (units by time).

    Units are ordered by their correlation with the signal, so units that follow it and
    units that oppose it group at the two ends.

    Args:
        x: time stamps or positions ``[L]``.
        signal: the target input ``[L]`` in real units.
        hidden: top-layer activity ``[L, H]`` (``model.hidden_sequence``).
        path: where to write the PNG.
        title: figure title.
        ylabel: label of the signal axis.
    """
    act = np.asarray(hidden, dtype=np.float64)
    order = np.argsort(_correlations(act, np.asarray(signal, dtype=np.float64)))
    act = act[:, order]
    lim = float(np.nanmax(np.abs(act))) or 1.0
    units = act.shape[1]
    fig = Figure(figsize=(10, 2.0 + min(5.0, 0.09 * units + 1.4)))
    gs = fig.add_gridspec(
        2,
        2,
        height_ratios=[1, min(4.0, 0.07 * units + 1.2)],
        width_ratios=[40, 1],
        hspace=0.08,
        wspace=0.03,
    )
    top = fig.add_subplot(gs[0, 0])
    pos = np.arange(len(signal))
    top.plot(pos, signal, color=ACTUAL_COLOR, lw=1.3)
    top.set_xlim(-0.5, len(signal) - 0.5)
    top.set_ylabel(ylabel)
    top.tick_params(labelbottom=False)
    top.grid(alpha=0.3)
    top.set_title(title)
    ax = fig.add_subplot(gs[1, 0], sharex=top)
    im = ax.imshow(
        act.T,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
        extent=(-0.5, len(signal) - 0.5, units - 0.5, -0.5),
    )
    ax.set_ylabel(f"unit (of {units}, sorted)")
    ticks = np.linspace(0, len(signal) - 1, min(8, len(signal))).round().astype(int)
    ax.set_xticks(ticks)
    ax.set_xticklabels([_short(x[i]) for i in ticks], rotation=30, ha="right", fontsize=8)
    cbar = fig.colorbar(im, cax=fig.add_subplot(gs[1, 1]))
    cbar.set_label("activation", fontsize=9)
    return save_figure(fig, path)


def _correlations(act: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit ``[L, H]`` with ``signal [L]`` (0 for flat units)."""
    a = act - act.mean(axis=0)
    s = signal - signal.mean()
    denom = np.sqrt((a**2).sum(axis=0) * (s**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * s[:, None]).sum(axis=0) / denom, 0.0)


def _short(stamp: Any) -> str:
    """A compact tick label: dates without a midnight time."""
    text = str(stamp)
    return text[:-9] if text.endswith(" 00:00:00") else text
