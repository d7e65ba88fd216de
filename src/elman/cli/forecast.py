"""``elman forecast``: continue a saved model after the last point of the data."""

from __future__ import annotations

import argparse
from typing import Any

from elman.cli.common import say, stderr, wrote
from elman.config import MISSING
from elman.files import atomic_write_text, check_output_file

READING = ("sep", "decimal", "thousands", "dayfirst", "date_format", "missing")


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
    g = p.add_argument_group("reading --data (default: as the run read its training data)")
    g.add_argument("--sep", metavar="C", help="field delimiter")
    g.add_argument("--decimal", metavar="C", help="decimal mark of the numbers")
    g.add_argument("--thousands", metavar="C", help="thousands separator of the numbers")
    g.add_argument(
        "--dayfirst",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read ambiguous dates day first (01/02/2023 is 1 February)",
    )
    g.add_argument("--date-format", metavar="FMT", help="format of the dates, e.g. %%d/%%m/%%Y")
    g.add_argument(
        "--missing",
        choices=MISSING,
        help="what to do with missing values",
    )
    p.add_argument(
        "--intervals",
        metavar="LEVELS",
        help="add conformal prediction intervals, e.g. 80,95 (columns <target>_lower_80, ...)",
    )
    p.add_argument(
        "--future",
        metavar="FILE",
        help="values of the future covariates for the forecast steps (CSV or Parquet: one "
        "column per covariate, plus the series id column for several series)",
    )
    p.add_argument("--output", metavar="FILE.csv", help="write the forecast table here")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the forecast after the end of the history (with its intervals)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, forecast, print or write the table."""
    from elman.forecaster import Forecaster
    from elman.forecasting.intervals import parse_levels

    out = check_output_file(args.output, args.overwrite)
    picture = check_output_file(args.plot, args.overwrite, "--plot", "forecast.png")
    levels = parse_levels(args.intervals) if args.intervals is not None else None
    f = Forecaster.load(args.run_dir)
    reading = {k: getattr(args, k) for k in READING if getattr(args, k) is not None}
    if reading:  # this file is read differently from the training data
        f.config = f.config.replace(**reading)
    if levels:
        levels = _calibrated_levels(f, levels)
    history = f.series_for(args.data)  # read once: the forecast and its picture continue it
    data = history if args.data is not None else None  # None: from the saved (online) state
    table = f.predict(horizon=args.horizon, data=data, future=args.future, intervals=levels or None)
    text = _for_display(table, f.config.data.date_format).to_csv()
    written = []
    if picture is not None:
        from elman.runs.report import plot_future

        written.append(plot_future(history, table, picture, f"{f.config.model.model} forecast"))
    if out is None:
        say(text.rstrip("\n"))
    else:
        atomic_write_text(out, text)
        written.insert(0, out)
    wrote(written)
    return 0


SIGNIFICANT = 7  # digits of the largest value of a column shown (float32 carries about 7)


def _for_display(table: Any, date_format: str | None) -> Any:
    """The forecast table as it is printed: numbers rounded to ``SIGNIFICANT`` digits of
    their column's largest value (not 15 to 17 digits of float noise), and time stamps in
    the run's ``--date-format`` when it has one."""
    import numpy as np
    import pandas as pd

    out = table.copy()
    for col in out.select_dtypes("floating").columns:
        values = out[col].to_numpy(float)
        top = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
        if 1e-4 <= top < 1e15:
            out[col] = values.round(max(0, SIGNIFICANT - 1 - int(np.floor(np.log10(top)))))
    if date_format and isinstance(out.index, (pd.DatetimeIndex, pd.PeriodIndex)):
        name = out.index.name
        out.index = pd.Index(out.index.strftime(date_format), name=name)
    return out


def _calibrated_levels(f: Any, levels: tuple[int, ...]) -> tuple[int, ...]:
    """The requested levels the model's calibration supports; a note for the others.

    A level needs enough calibration windows (19 for 95%). When some requested levels have
    them, the others are left out with a note that says how to get them; when none has, the
    forecaster refuses with its own message.
    """
    from elman.forecasting.intervals import min_residuals

    cal = f.calibration
    if cal is None:
        return levels
    kept = tuple(lv for lv in levels if lv in cal.quantiles)
    if not kept:
        return levels
    horizon = f.sizes.horizon if f.sizes is not None else 1
    for lv in levels:
        if lv not in kept:
            need = min_residuals(lv)
            stderr(
                f"elman: note: no {lv}% intervals: they need {need} calibration windows and "
                f"this model's {cal.source} part has {cal.windows}; showing "
                f"{', '.join(f'{k}%' for k in kept)} only (for {lv}%: retrain with --val-size "
                f"{need + horizon - 1} or more, or run 'elman backtest ... --intervals {lv}')"
            )
    return kept
