"""``elman backtest``: rolling-origin evaluation from K cutoffs, beside the baselines.

The work is :func:`elman.runs.workflows.backtest_run`; this module parses and prints.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from elman.cli.common import model_label, say, say_metrics, wrote
from elman.cli.options import add_config_options, config_from_args

if TYPE_CHECKING:
    from elman.evaluation.scores import BacktestResult



def add_parser(subs: Any) -> None:
    """Register ``elman backtest``."""
    p = subs.add_parser(
        "backtest",
        help="rolling-origin backtest: forecast from K cutoffs and score against baselines",
        description="Forecast --horizon steps from --folds cutoffs (the last one --horizon "
        "points before the end, --stride apart), score the model and the naive, "
        "seasonal-naive, drift, linear-AR, ETS and Theta baselines per fold and overall, and "
        "write a run directory with metrics, pictures and a report. With --refit never the "
        "model is trained once on the data before the first cutoff and all cutoffs are "
        "forecast in one batched pass. Example: elman backtest --data builtin:airline "
        "--horizon 12 --folds 4 --output bt",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config (e.g. a run's config.toml)")
    p.add_argument("--folds", type=int, default=5, help="cutoffs per series (default 5)")
    p.add_argument(
        "--stride", type=int, help="steps between cutoffs (default: the horizon, no overlap)"
    )
    p.add_argument(
        "--refit",
        default="never",
        metavar="never|every|N",
        help="retrain before no cutoff but the first (never, default), every cutoff, or "
        "every N-th cutoff",
    )
    p.add_argument(
        "--intervals",
        metavar="LEVELS",
        help="conformal prediction intervals to score, e.g. 80,95 (needs enough folds)",
    )
    add_config_options(p, ("data", "model", "train"))
    p.add_argument("--no-progress-bar", action="store_true", help="never draw a progress bar")
    p.add_argument(
        "--output",
        "--out",
        dest="out",
        required=True,
        metavar="DIR",
        help="directory for the results (refused if it exists and is not empty, unless "
        "--overwrite)",
    )
    p.add_argument("--overwrite", action="store_true", help="reuse a non-empty --output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Backtest, save the run directory, print the table (:func:`~elman.runs.backtest_run`)."""
    from elman.runs.workflows import backtest_run

    run = backtest_run(
        args.out, config_from_args(args), folds=args.folds, stride=args.stride,
        refit=args.refit, intervals=args.intervals, overwrite=args.overwrite,
    )  # fmt: skip
    f = run.forecaster
    _print(run.result, model_label(f.config.model.model, f.ensemble is not None))
    wrote(run.paths)
    return 0


def _print(result: BacktestResult, model: str) -> None:
    from elman.evaluation.scores import MODEL

    n = len(result.series)
    what = f"{n} series" if n > 1 else "the series"
    say(
        f"backtest: {result.folds} folds x horizon {result.horizon} of {what} (stride "
        f"{result.stride}, refit {result.refit}: {result.fits} fit(s), {result.passes} batched "
        "forecast pass(es))"
    )
    say_metrics(result.metrics, model)
    for note in result.notes:
        say(f"note: {note}")
    ours = result.metrics[MODEL]
    for level in result.levels:
        say(
            f"{level}% intervals: empirical coverage {ours[f'coverage_{level}']:.3f} "
            f"(nominal {level / 100:.2f}), pinball loss {ours[f'pinball_{level}']:.4g}"
        )
    t = result.timings
    say(
        f"time: fit {t['fit_s']:.2f} s, forecast {t['forecast_s']:.3f} s, baselines "
        f"{t['baselines_s']:.3f} s, metrics {t['metrics_s']:.2f} s"
    )
