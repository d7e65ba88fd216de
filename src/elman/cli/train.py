"""``elman train``: fit a forecaster, score it on a hold-out beside the baselines, save a run.

A run checkpoints itself (``RUN/checkpoint/``) every ``--checkpoint-every`` epochs and when
training ends. Ctrl-C stops after the current batch, checkpoints and exits with code 130;
``elman train --resume RUN`` continues a stopped or killed run where its last checkpoint
left it.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from elman import distributed
from elman.checkpoint import CHECKPOINT_DIR, CHECKPOINT_FILE, read_checkpoint_doc
from elman.cli import launcher
from elman.cli.common import say, stderr, wrote
from elman.cli.options import add_config_options, config_from_args
from elman.config import Config, DataConfig, ModelConfig, TrainConfig
from elman.errors import CheckpointError, ConfigError
from elman.evaluate import MODEL, HoldoutResult, evaluate_holdout, split_holdout
from elman.files import atomic_write_text, new_out_dir
from elman.forecaster import Forecaster
from elman.prepare import load_series
from elman.report import render_run
from elman.resume import Checkpointer, data_fingerprint
from elman.runs import CONFIG, HISTORY, RunLogger, data_schema, write_history, write_holdout

SHOWN = ("mae", "rmse", "smape", "mase")
RESUMABLE = {"source", "threads", "device"}  # options that may be given again with --resume
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def add_parser(subs: Any) -> None:
    """Register ``elman train``."""
    p = subs.add_parser(
        "train",
        help="train a forecaster on a series, score it on a hold-out, save a run directory",
        description="Train on DATA without its last --test-size points (default: the horizon), "
        "forecast them, and print the model's metrics beside naive, seasonal-naive, drift and "
        "linear-AR baselines. Example: elman train --data builtin:airline --horizon 12 --out run",
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
    """Train (or resume), evaluate, save."""
    main = distributed.is_main()  # rank 0 of a torchrun job (or a plain process) writes
    if args.resume:
        return _train(args, *_resumed_run(args), main)
    out, cfg, every = _new_run(args)
    if not main:
        return _train(args, out, cfg, every, main)
    # A mistake found before the first epoch is saved leaves no directory to block the rerun.
    with new_out_dir(out, args.overwrite, produced=_trained) as out:
        return _train(args, out, cfg, every, main)


def _trained(out: Path) -> bool:
    """Whether a run directory holds an epoch's history or a checkpoint (worth keeping)."""
    return (out / HISTORY).exists() or (out / CHECKPOINT_DIR / CHECKPOINT_FILE).exists()


def _train(args: argparse.Namespace, out: Path, cfg: Config, every: int, main: bool) -> int:
    series = load_series(cfg.data.source, cfg.data)
    if args.nproc is not None:  # rerun this command line on --nproc ranks (torchrun)
        return launcher.launch(args, out, cfg)
    launcher.join(args, cfg)
    fingerprint = data_fingerprint(series)
    if not args.resume and main:
        atomic_write_text(out / CONFIG, cfg.to_toml())
    test = cfg.data.test_size if cfg.data.test_size is not None else cfg.data.horizon
    fitted = split_holdout(series, test) if test else series
    extra = {"config": cfg.to_dict(), "checkpoint_every": every}
    ckpt = Checkpointer(out / CHECKPOINT_DIR, every, bool(args.resume), fingerprint, extra)
    f = Forecaster(config=cfg)
    with _stop_on_sigint(ckpt), distributed.peer_errors():
        f.fit(fitted, hooks=[ckpt, RunLogger(out)] if main else [distributed.follower(ckpt)])
    assert f.train_state is not None
    if not main:  # ranks other than 0 neither write nor print
        return INTERRUPTED if f.train_state.interrupted else 0
    if f.train_state.interrupted:
        stderr(f"elman: interrupted; checkpoint saved to {out} (resume with: {resume_hint(out)})")
        return INTERRUPTED
    paths = [out / CONFIG, write_history(out / HISTORY, f.train_state.history)]
    summary = f.summary()
    if test:
        result = evaluate_holdout(f, series, test)
        paths += write_holdout(out, result, series, {"training": summary})
        _print_table(result, cfg, series_count=len(series))
    f.series = series  # forecasts continue after the last point of the full data
    f.save(out, extra={"data": data_schema(series, fingerprint)})
    paths += [out / "model.safetensors", out / "model.json"]
    paths += render_run(out, series)
    resumed = f"; resumed at epoch {ckpt.resumed_from + 1}" if ckpt.resumed_from is not None else ""
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
    wrote(paths)
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
    out = Path(args.resume)
    for flag, value in (("--out", args.out), ("--config", args.config), ("--overwrite", None)):
        if value is not None or (flag == "--overwrite" and args.overwrite):
            raise ConfigError(f"{flag} cannot be combined with --resume: a run resumes in place")
    if not out.is_dir():
        raise CheckpointError(f"--resume '{out}' is not a run directory (it does not exist)")
    path = out / CHECKPOINT_DIR / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(
            f"--resume '{out}' holds no {CHECKPOINT_DIR}/{CHECKPOINT_FILE}; give a run "
            "directory written by 'elman train'"
        )
    doc = read_checkpoint_doc(path)
    try:
        cfg = Config.from_dict(doc["config"], source=str(path))
    except (KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: no valid run configuration ({exc})") from exc
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
        stored = doc.get("checkpoint_every", 1)
        every = stored if isinstance(stored, int) and stored >= 0 else 1
    elif every < 0:
        raise ConfigError(f"--checkpoint-every ({every}) must be >= 0")
    return out, cfg, every


def _given_options(args: argparse.Namespace) -> set[str]:
    names = {f.name for k in (DataConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(k)}
    return {n for n in names if getattr(args, n, None) is not None}


@contextmanager
def _stop_on_sigint(ckpt: Checkpointer) -> Iterator[None]:
    """Ctrl-C asks the trainer to stop after the current batch; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        trainer = ckpt.trainer
        if trainer is None or trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_table(result: HoldoutResult, cfg: Config, series_count: int) -> None:
    what = f"{series_count} series" if series_count > 1 else "the series"
    say(f"hold-out: last {result.test_size} points of {what} (season {result.season})")
    say("  ".join(["method".ljust(16), *(m.upper().rjust(10) for m in SHOWN)]))
    for name, metrics in result.metrics.items():
        label = f"{MODEL} ({cfg.model.model})" if name == MODEL else name
        cells = [f"{metrics.get(m, float('nan')):10.4g}" for m in SHOWN]
        say("  ".join([label.ljust(16), *cells]))
    model_mase = result.metrics[MODEL].get("mase")
    snaive = result.metrics.get("seasonal_naive", {}).get("mase")
    if model_mase is not None and snaive is not None:
        verdict = "beats" if model_mase < snaive else "does NOT beat"
        say(f"the model {verdict} seasonal-naive on MASE ({model_mase:.3f} vs {snaive:.3f})")
