"""``elman forecast``: continue a saved model after the last point of the data."""

from __future__ import annotations

import argparse
from typing import Any

from elman.cli.common import say, wrote
from elman.files import atomic_write_text, check_output_file


def add_parser(subs: Any) -> None:
    """Register ``elman forecast``."""
    p = subs.add_parser(
        "forecast",
        help="forecast with a saved model after the last point of the data",
        description="Load the model in RUN_DIR and forecast the steps after the last point of "
        "--data (default: the data the run was trained on). Example: elman forecast run "
        "--data builtin:airline --horizon 12 --output forecast.csv",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'elman train'")
    p.add_argument(
        "--data", metavar="FILE", help="history to continue (CSV, Parquet, builtin:NAME)"
    )
    p.add_argument("--horizon", type=int, help="steps ahead (default: the trained horizon)")
    p.add_argument(
        "--intervals",
        metavar="LEVELS",
        help="add conformal prediction intervals, e.g. 80,95 (columns <target>_lower_80, ...)",
    )
    p.add_argument("--output", metavar="FILE.csv", help="write the forecast table here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, forecast, print or write the table."""
    from elman.forecaster import Forecaster
    from elman.forecasting.intervals import parse_levels

    out = check_output_file(args.output, args.overwrite)
    levels = parse_levels(args.intervals) if args.intervals is not None else None
    f = Forecaster.load(args.run_dir)
    table = f.predict(horizon=args.horizon, data=args.data, intervals=levels)
    text = table.to_csv()
    if out is None:
        say(text.rstrip("\n"))
        return 0
    atomic_write_text(out, text)
    wrote([out])
    return 0
