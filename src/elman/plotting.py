"""Matplotlib figures, drawn off-screen (Agg) and saved as PNG. Nothing here opens a window."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display is ever needed

from matplotlib.figure import Figure  # noqa: E402

from elman.files import atomic_write_bytes  # noqa: E402


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
