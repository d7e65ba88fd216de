"""Small helpers shared by the subcommand modules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_out_options(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    """``--out DIR`` and ``--overwrite``."""
    p.add_argument(
        "--out",
        default=default,
        required=default is None,
        metavar="DIR",
        help=f"directory for {what} (refused if it exists and is not empty, unless --overwrite)"
        + (f"; default {default}" if default else ""),
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse an existing --out directory, replacing the files elman writes there",
    )


def say(*parts: object) -> None:
    """Print a result line on stdout (the library itself never prints)."""
    print(*parts, flush=True)


def wrote(paths: list[Path] | list[str]) -> None:
    """Tell the user where results went."""
    for p in paths:
        say(f"wrote {p}")


def stderr(msg: str) -> None:
    """A warning or progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


SHOWN = ("mae", "rmse", "smape", "mase")  # the metrics of the printed tables


def say_metrics(metrics: dict[str, dict[str, float]], model_label: str) -> None:
    """Print a metrics table: one row per method (the model's row labelled ``model_label``)."""
    labels = {name: model_label if name == "model" else name for name in metrics}
    width = max(16, *(len(v) for v in labels.values()))
    say("  ".join(["method".ljust(width), *(m.upper().rjust(10) for m in SHOWN)]))
    for name, row in metrics.items():
        cells = [f"{row.get(m, float('nan')):10.4g}" for m in SHOWN]
        say("  ".join([labels[name].ljust(width), *cells]))


def model_label(model: str, ensemble: bool) -> str:
    """How the model's row is labelled: ``model (lstm)``, ``model (lstm ensemble)``."""
    return f"model ({model}{' ensemble' if ensemble else ''})"
