"""Starting a torchrun job from elman: ``elman train ... --nproc N``.

``launch(["train", ...], nproc=2)`` is ``python -m torch.distributed.run --nproc-per-node 2
--max-restarts 0 -m elman train ...`` with torchrun's agent running in this process, so that
a failed job ends in one :class:`~elman.errors.TrainingError` line instead of torchrun's
report. What each rank then does is in :mod:`elman.training.distributed`.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from elman.errors import ConfigError, TrainingError
from elman.runtime import physical_cores, quiet_loggers

LAUNCHER_FLAGS = ("--nproc", "--nnodes", "--rdzv-endpoint")  # read by the launching process


def strip_launcher_flags(argv: Sequence[str]) -> list[str]:
    """``argv`` without the flags only the launching process reads (``--nproc N``, ...).

    Both ``--flag VALUE`` and ``--flag=VALUE`` forms go, and so do unambiguous prefixes
    that argparse would have accepted (``--npr 2``).
    """
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if len(name) > 3 and any(flag.startswith(name) for flag in LAUNCHER_FLAGS):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def launcher_argv(
    command: Sequence[str], nproc: int, nnodes: str = "1", rdzv_endpoint: str | None = None
) -> list[str]:
    """The ``torchrun`` arguments that run ``python -m elman COMMAND`` on ``nproc`` ranks."""
    argv = ["--nproc-per-node", str(nproc), "--nnodes", str(nnodes), "--max-restarts", "0"]
    if rdzv_endpoint:
        argv += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint]
    return [*argv, "-m", "elman", *command]


def describe_failure(failures: Mapping[int, Any]) -> str:
    """One line about the worker that brought a job down (torchrun ``ProcessFailure``\\ s).

    The cause is named first: a worker killed by a signal (SIGKILL from outside or the
    out-of-memory killer, a crash), then one that exited with an error (its error line is
    printed), then one that aborted (SIGABRT: the collective library aborts a rank whose
    peer vanished), and last the workers the agent stopped with SIGTERM because of another.
    """
    if not failures:
        return "a worker failed"

    def order(rank: int) -> tuple[int, int, int]:
        code = failures[rank].exitcode
        kind = {-signal.SIGTERM: 3, -signal.SIGABRT: 2}.get(code, 0 if code < 0 else 1)
        return kind, failures[rank].timestamp, rank

    ranks = sorted(failures, key=order)
    rank = ranks[0]
    f = failures[rank]
    if f.exitcode < 0:
        how = f"was killed by signal {f.signal_name()}"
    else:
        how = f"exited with code {f.exitcode}"
        if f.exitcode in (1, 2):
            how += " (its error line is above)"
    others = f" ({len(failures)} workers failed)" if len(failures) > 1 else ""
    return f"worker rank {rank} (pid {f.pid}) {how}{others}; the job was stopped"


def launch(
    command: Sequence[str], nproc: int, nnodes: str = "1", rdzv_endpoint: str | None = None
) -> None:
    """Run ``python -m elman COMMAND`` on ``nproc`` local ranks through torchrun, and wait.

    This is ``python -m torch.distributed.run --nproc-per-node N --max-restarts 0 -m elman
    COMMAND`` with torchrun's agent running in this process: when any worker fails, the
    agent stops the others and this function raises one :class:`TrainingError` line.
    Each rank's share of the cores goes into ``OMP_NUM_THREADS`` (unless already set).

    Raises:
        ConfigError: invalid launcher options, or already inside a torchrun worker.
        TrainingError: a worker failed or was killed.
        KeyboardInterrupt: this process was interrupted (the workers have been stopped).
    """
    if nproc < 1:
        raise ConfigError(f"--nproc ({nproc}) must be >= 1")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        raise ConfigError(
            "--nproc was given inside a torchrun worker; launch either with torchrun or with "
            "--nproc, not both"
        )
    if str(nnodes) != "1" and not rdzv_endpoint:
        raise ConfigError(
            f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, the same on every node"
        )
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, physical_cores() // nproc)))
    args = torchrun.parse_args(launcher_argv(command, nproc, nnodes, rdzv_endpoint))
    try:
        with _quiet_agent():
            torchrun.run(args)
    except ChildFailedError as exc:
        raise TrainingError(describe_failure(exc.failures)) from None
    except SignalException:
        raise KeyboardInterrupt from None


@contextmanager
def _quiet_agent() -> Iterator[None]:
    """Silence torchrun's agent log (its failure report becomes our one line) unless elman
    itself logs at INFO or below (``-v``)."""
    if logging.getLogger("elman").getEffectiveLevel() <= logging.INFO:
        yield
        return

    def agent_loggers() -> list[str]:
        names = list(logging.root.manager.loggerDict)
        return [n for n in names if n.startswith("torch.distributed")]

    with quiet_loggers(agent_loggers, logging.CRITICAL):
        yield
