"""``elman plot``: redraw the pictures and the report of a run directory from its files."""

from __future__ import annotations

import argparse
from typing import Any

from elman.cli.common import wrote


def add_parser(subs: Any) -> None:
    """Register ``elman plot``."""
    p = subs.add_parser(
        "plot",
        help="redraw the pictures and report.md of a run directory",
        description="Read the files of RUN_DIR (written by 'elman train' or 'elman backtest') "
        "and write forecast.png, loss.png, hidden_heatmap.png, backtest_by_step.png (for "
        "backtests) and report.md into it. Example: elman plot run",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by train or backtest")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Render and list the files."""
    from elman.runs.report import render_run

    wrote(render_run(args.run_dir))
    return 0
