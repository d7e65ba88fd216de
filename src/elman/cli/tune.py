"""``elman tune``: search hyperparameters with Optuna, honestly, resumably, on many workers.

The work is :func:`elman.tuning.run.tune`; this module parses, prints the search space at
the start, draws the progress line on stderr and prints the result.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from elman.cli.common import say, stderr, wrote
from elman.cli.options import add_config_options, config_from_args

if TYPE_CHECKING:
    from elman.tuning.result import Progress, TuneResult
    from elman.tuning.space import SearchSpace
    from elman.tuning.validation import Split


SEARCH_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--trials", {"type": int, "default": 20, "metavar": "N",
                  "help": "trials the study holds when the search ends (default 20)"}),
    ("--timeout", {"type": float, "metavar": "SECONDS",
                   "help": "start no trial after this many seconds"}),
    ("--jobs", {"type": int, "default": 1, "metavar": "N",
                "help": "worker processes sharing the study, one torch thread each "
                "(default 1)"}),
    ("--space", {"metavar": "FILE",
                 "help": "TOML file that narrows or replaces the search space "
                 "(see docs/tuning.md)"}),
    ("--seeds", {"type": int, "default": 3, "metavar": "N",
                 "help": "seeds the best configurations and the defaults are scored over "
                 "(default 3)"}),
    ("--top", {"type": int, "default": 3, "metavar": "N",
               "help": "best trials re-scored over the seeds (default 3)"}),
    ("--folds", {"type": int, "metavar": "K",
                 "help": "validation windows per series (default: from the series' count "
                 "and length)"}),
    ("--neighbours", {"type": int, "metavar": "N",
                      "help": "the defaults' one-option neighbours tried right after them "
                      "(default: half of the other trials; 0: sample from the start)"}),
    ("--train-best", {"action": argparse.BooleanOptionalAction, "default": True,
                      "help": "write OUT/best, the run of 'elman train --config "
                      "OUT/best.toml' (default: on)"}),
    ("--storage", {"metavar": "URL",
                   "help": "an Optuna RDB URL (postgresql://...) shared by workers on several "
                   "machines, instead of the journal file in --out"}),
]  # fmt: skip
DIRECTORY_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--out", {"required": True, "metavar": "DIR",
               "help": "directory of the search (refused if not empty, unless --resume or "
               "--overwrite)"}),
    ("--resume", {"action": "store_true",
                  "help": "continue the study in --out (same data, horizon, options and "
                  "space)"}),
    ("--overwrite", {"action": "store_true",
                     "help": "start a new search in a non-empty --out, replacing elman's "
                     "files"}),
]  # fmt: skip


def add_parser(subs: Any) -> None:
    """Register ``elman tune``."""
    p = subs.add_parser(
        "tune",
        help="search hyperparameters (Optuna): validated on rolling windows, resumable, parallel",
        description="Search the options of a model type on DATA. Every trial trains once and "
        "is scored on K rolling windows before an untouched final window; trial 0 is the "
        "defaults, then come their one-option neighbours; the best few are re-scored over "
        "seeds; the report compares tuned and "
        "default on the untouched window. Example: elman tune --data builtin:airline "
        "--horizon 12 --trials 30 --out runs/tune",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config to start from (trial 0)")
    g = p.add_argument_group("search")
    for flag, kwargs in SEARCH_OPTIONS:
        g.add_argument(flag, **kwargs)
    r = p.add_argument_group("search directory")
    for flag, kwargs in DIRECTORY_OPTIONS:
        r.add_argument(flag, **kwargs)
    add_config_options(p, ("data", "model", "train"))
    p.add_argument("--no-progress-bar", action="store_true", help="never draw the progress line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the search: :func:`elman.tuning.run.tune`."""
    import optuna

    from elman.errors import ConfigError
    from elman.tuning.run import tune

    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: continue or start afresh")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cfg = config_from_args(args)
    line = None if args.no_progress_bar else ProgressLine()
    result = tune(
        out=args.out, config=cfg, trials=args.trials, timeout=args.timeout, jobs=args.jobs,
        space=args.space, resume=args.resume, overwrite=args.overwrite, storage=args.storage,
        seeds=args.seeds, top=args.top, folds=args.folds, neighbours=args.neighbours,
        train_best=args.train_best,
        on_start=_print_start, on_progress=line,
    )  # fmt: skip
    if line is not None:
        line.close()
    _print_result(result)
    return 0


def _print_start(split: Split, space: SearchSpace, resumed: bool) -> None:
    what = "resuming the study" if resumed else "searching"
    say(
        f"{what}: {split.folds} validation window(s) of {split.horizon} points per series "
        f"({len(split.series)} series), then an untouched final window of {split.horizon}"
    )
    say("search space:")
    for text in space.lines():
        say(f"  {text}")


class ProgressLine:
    """Trials done, best score and elapsed time on stderr: redrawn on a terminal, one line
    per finished trial otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_done = -1

    def __call__(self, p: Progress) -> None:
        best = "-" if p.best is None else f"{p.best:.4f} (trial {p.best_trial})"
        text = (
            f"tune: {p.done}/{p.total} trials ({p.complete} complete, {p.pruned} pruned, "
            f"{p.failed} failed, {p.running} running), best {best}, {p.elapsed:.0f} s"
        )
        if self.tty:
            sys.stderr.write(f"\r{text}   ")
            sys.stderr.flush()
        elif p.done != self.last_done:
            stderr(text)
        self.last_done = p.done

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _print_result(result: TuneResult) -> None:
    from elman.tuning.report import finite_mean, spread_text

    say(f"untouched final window ({result.split.horizon} points), MASE over seeds "
        f"{', '.join(str(s) for s in result.chosen.seeds)}:")  # fmt: skip
    for name in ("tuned", "default"):
        values = result.untouched[name]
        per = ", ".join(f"{v:.4f}" for v in values)
        say(f"  {name.ljust(8)} mean {finite_mean(values):.4f}  spread {spread_text(values)}  "
            f"({per})")  # fmt: skip
    if result.recovered:
        say(f"{result.recovered} trial(s) left running by a stopped worker were run again")
    say(f"chosen: trial {result.chosen.trial} ({len(result.trials)} trials, "
        f"{result.seconds:.0f} s): {result.note}")  # fmt: skip
    wrote(result.paths + ([result.best_run] if result.best_run else []))
