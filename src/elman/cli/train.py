"""``elman train``: fit a forecaster, score it on a hold-out beside the baselines, save a run.

A run checkpoints itself (``RUN/checkpoint/``) every ``--checkpoint-every`` epochs and when
training ends. Ctrl-C stops after the current batch, checkpoints and exits with code 130;
``elman train --resume RUN`` continues a stopped or killed run where its last checkpoint
left it. The work is :func:`elman.runs.workflows.train_run`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elman.cli import launcher
from elman.cli.common import model_label, say, say_metrics, stderr, wrote
from elman.cli.options import add_config_options, config_from_args
from elman.config import Config, DataConfig, ModelConfig, TrainConfig
from elman.errors import ConfigError

if TYPE_CHECKING:
    from elman.evaluation.holdout import HoldoutResult


RESUMABLE = {"source", "threads", "device"}  # options that may be given again with --resume
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def add_parser(subs: Any) -> None:
    """Register ``elman train``."""
    p = subs.add_parser(
        "train",
        help="train a forecaster on a series, score it on a hold-out, save a run directory",
        description="Train on DATA without its last --test-size points (default: the horizon), "
        "forecast them, and print the model's metrics beside naive, seasonal-naive, drift, "
        "linear-AR, ETS and Theta baselines. Example: elman train --data builtin:airline "
        "--horizon 12 --out run",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config (e.g. a run's config.toml)")
    add_config_options(p, ("data", "model", "train"))
    p.add_argument("--no-progress-bar", action="store_true", help="never draw a progress bar")
    g = p.add_argument_group("run directory")
    g.add_argument(
        "--out",
        metavar="DIR",
        help="new run directory (refused if it exists and is not empty, unless --overwrite)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="reuse an existing --out directory, replacing the files elman writes there",
    )
    g.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint (same data; only --data, "
        "--threads, --device and --checkpoint-every may be given again)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="write a checkpoint every N epochs and when training ends (0: only at the end; "
        "default 1)",
    )
    launcher.add_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train (or resume), evaluate, save: :func:`elman.runs.workflows.train_run`."""
    from elman.runs.workflows import train_run

    if args.resume:
        out, cfg, every = _resumed_run(args)
    else:
        out, cfg, every = _new_run(args)
    if args.nproc is None:
        launcher.join(args, cfg)
    launch = (lambda out, cfg: launcher.launch(args, out, cfg)) if args.nproc is not None else None
    run = train_run(
        out, cfg, checkpoint_every=every, resume=bool(args.resume), overwrite=args.overwrite,
        launch=launch,
    )  # fmt: skip
    if launch is not None:
        return run.exit_code
    f = run.forecaster
    assert f is not None and f.train_state is not None
    if not run.main:  # ranks other than 0 neither write nor print
        return INTERRUPTED if run.interrupted else 0
    if run.interrupted:
        stderr(f"elman: interrupted; checkpoint saved to {out} (resume with: {resume_hint(out)})")
        return INTERRUPTED
    if run.holdout is not None:
        _print_table(run.holdout, cfg, series_count=run.series_count, ensemble=f.ensemble)
    summary = f.summary()
    resumed = f"; resumed at epoch {run.resumed_from + 1}" if run.resumed_from is not None else ""
    if f.train_state.retries:
        lr = f.trainer.optimizer.param_groups[0]["lr"] if f.trainer else float("nan")
        say(
            f"the loss diverged {f.train_state.retries} time(s); each time the last good "
            f"weights were restored and the learning rate halved (now {lr:g})"
        )
    say(
        f"trained {cfg.model.model} ({summary.get('epochs_run')} epochs, best at "
        f"{summary.get('best_epoch')}{resumed}); lookback {f.sizes.lookback if f.sizes else '?'}"
    )
    from elman.runs.directory import averaging_text, ensemble_text

    averaging = averaging_text(summary)
    if averaging:
        say(averaging)
    if f.ensemble is not None:
        say(f"ensemble: {ensemble_text(f.ensemble.to_dict())}")
    wrote(run.paths)
    return 0


def resume_hint(out: Path) -> str:
    """The command that continues the run in ``out``."""
    return f"elman train --resume {out}"


def _new_run(args: argparse.Namespace) -> tuple[Path, Config, int]:
    """A new run's directory (not yet made), configuration and checkpoint interval."""
    cfg = config_from_args(args)
    if cfg.data.source is None:
        raise ConfigError("no data given: use --data FILE or --data builtin:NAME")
    if args.out is None:
        raise ConfigError("--out DIR is required: the directory of the new run (or --resume DIR)")
    every = 1 if args.checkpoint_every is None else args.checkpoint_every
    if every < 0:
        raise ConfigError(f"--checkpoint-every ({every}) must be >= 0")
    return Path(args.out), cfg, every


def _resumed_run(args: argparse.Namespace) -> tuple[Path, Config, int]:
    """The run directory, its stored config (with the allowed overrides) and its cadence."""
    from elman.runs.workflows import resume_config

    out = Path(args.resume)
    for flag, value in (("--out", args.out), ("--config", args.config), ("--overwrite", None)):
        if value is not None or (flag == "--overwrite" and args.overwrite):
            raise ConfigError(f"{flag} cannot be combined with --resume: a run resumes in place")
    cfg, stored_every = resume_config(out)
    given = _given_options(args)
    fixed = sorted(given - RESUMABLE)
    if fixed:
        flag = "--" + fixed[0].replace("_", "-")
        raise ConfigError(
            f"{flag} cannot change when resuming: --resume continues the run as configured; "
            "start a new run with --out to train differently"
        )
    cfg = config_from_args(args, base=cfg)
    every = args.checkpoint_every
    if every is None:
        every = stored_every
    elif every < 0:
        raise ConfigError(f"--checkpoint-every ({every}) must be >= 0")
    return out, cfg, every


def _given_options(args: argparse.Namespace) -> set[str]:
    names = {f.name for k in (DataConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(k)}
    return {n for n in names if getattr(args, n, None) is not None}


def _print_table(
    result: HoldoutResult, cfg: Config, series_count: int, ensemble: Any = None
) -> None:
    from elman.evaluation.scores import MODEL

    what = f"{series_count} series" if series_count > 1 else "the series"
    say(f"hold-out: last {result.test_size} points of {what} (season {result.season})")
    say_metrics(result.metrics, model_label(cfg.model.model, ensemble is not None))
    for note in result.notes:
        say(f"note: {note}")
    model_mase = result.metrics[MODEL].get("mase")
    snaive = result.metrics.get("seasonal_naive", {}).get("mase")
    if model_mase is not None and snaive is not None:
        verdict = "beats" if model_mase < snaive else "does NOT beat"
        say(f"the model {verdict} seasonal-naive on MASE ({model_mase:.3f} vs {snaive:.3f})")
