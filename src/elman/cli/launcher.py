"""Distributed options of ``elman train``: ``--nproc N`` reruns the command on N ranks.

``elman train ... --nproc 2`` is ``python -m torch.distributed.run --nproc-per-node 2
--max-restarts 0 -m elman train ...`` (the launcher flags removed), with torchrun's agent in
this process so that a failed job ends in one line. See :mod:`elman.training.distributed`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from elman.cli.common import stderr
from elman.config import DEFAULT_DIST_TIMEOUT_S, Config
from elman.errors import ConfigError, TrainingError
from elman.files import CHECKPOINT_DIR, CHECKPOINT_FILE
from elman.models import switches

INTERRUPTED = 130


def add_options(p: argparse.ArgumentParser) -> None:
    """``--nproc``, ``--nnodes``, ``--rdzv-endpoint`` and ``--dist-timeout``."""
    g = p.add_argument_group("distributed training (torchrun + DDP, see docs/distributed.md)")
    g.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train one model data-parallel on N processes of this machine (gloo on CPU, "
        "nccl on GPUs, one per process); each gets 1/N of the cores and of every batch",
    )
    g.add_argument(
        "--nnodes",
        metavar="N",
        help="machines in the job (with --nproc and --rdzv-endpoint; run the same command "
        "on every machine)",
    )
    g.add_argument(
        "--rdzv-endpoint",
        metavar="HOST:PORT",
        help="where the machines of a multi-node job meet (a port open on one of them)",
    )
    g.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help=f"how long a process waits for the others before the job fails (default "
        f"{DEFAULT_DIST_TIMEOUT_S:g}, or ${switches.ENV_DIST_TIMEOUT})",
    )


def join(args: argparse.Namespace, cfg: Config) -> bool:
    """In a torchrun worker, join the job (quieting the library's log on ranks other than
    0); whether this process is the one that writes and prints."""
    from elman.training import distributed

    for flag, value in (("--nnodes", args.nnodes), ("--rdzv-endpoint", args.rdzv_endpoint)):
        if value is not None:
            raise ConfigError(f"{flag} needs --nproc N (processes per machine)")
    dist = distributed.init(cfg.train.device, args.dist_timeout)
    if dist is not None and not dist.is_main:
        logging.getLogger("elman").setLevel(logging.ERROR)
    return dist is None or dist.is_main


def launch(args: argparse.Namespace, out: Path, cfg: Config) -> int:
    """Run this same ``elman train`` command line on ``--nproc`` ranks; the exit code.

    ``out`` (the run directory) and ``cfg`` have been checked by the caller.
    """
    from elman.cli import build_parser
    from elman.training import distributed
    from elman.training.launch import launch as run_ranks
    from elman.training.launch import strip_launcher_flags

    argv = sys.argv[1:]
    try:
        same = vars(build_parser().parse_args(argv)) == vars(args)
    except SystemExit:
        same = False
    if not same:
        raise ConfigError("--nproc works from the command line only; in Python use torchrun")
    if cfg.train.tbptt:
        raise ConfigError(
            f"--tbptt ({cfg.train.tbptt}) walks each series in order and cannot be split "
            "across processes; drop --tbptt or --nproc"
        )
    if args.dist_timeout is not None:
        distributed.timeout_seconds(args.dist_timeout)  # refuse a bad value before launching
    hint = f"elman train --resume {out} --nproc {args.nproc}"
    try:
        run_ranks(
            strip_launcher_flags(argv),
            args.nproc,
            nnodes=args.nnodes or "1",
            rdzv_endpoint=args.rdzv_endpoint,
        )
    except TrainingError as exc:
        raise TrainingError(f"{exc}; {_next_step(out, hint)}") from None
    except KeyboardInterrupt:
        stderr(f"elman: interrupted; {_next_step(out, hint)}")
        return INTERRUPTED
    return 0


def _next_step(out: Path, hint: str) -> str:
    if (out / CHECKPOINT_DIR / CHECKPOINT_FILE).is_file():
        return f"continue from the last checkpoint with: {hint}"
    return "no checkpoint was written yet; run the command again (with --overwrite)"
