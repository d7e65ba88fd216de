"""Device choice, seeding, threads, signal handlers and logger levels: process-wide state."""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from elman.errors import ConfigError

if TYPE_CHECKING:  # torch and numpy are imported where used, so importing this module is cheap
    import torch

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a fresh generator for data order.

    Splits and data loaders take the returned generator rather than the global one, so that
    adding a random draw elsewhere does not change which batches a run sees.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def physical_cores() -> int:
    """Physical cores (hyper-threads counted once) this process may use, at least 1.

    Never more than the CPUs in the process's affinity mask (``taskset``, a container's
    cpuset), so a process pinned to one CPU does not start two threads that fight for it.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            text = fh.read()
        pairs = set()
        phys = core = None
        for line in text.splitlines():
            if line.startswith("physical id"):
                phys = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core = line.split(":")[1].strip()
                pairs.add((phys, core))
        if pairs:
            return max(1, min(len(pairs), usable_cpus()))
    except OSError:
        pass
    return usable_cpus()


MAX_THREADS_PER_CPU = 4  # more threads than this per usable CPU only wait on each other


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, further capped by a CPU quota.

    ``taskset`` and a container's cpuset limit the mask; a cgroup quota (``docker --cpus``,
    a Kubernetes CPU limit) limits the time, and is rounded up to whole CPUs.
    """
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        cpus = max(1, os.cpu_count() or 1)
    quota = cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


CGROUP_ROOT = "/sys/fs/cgroup"


def cpu_quota(root: str = CGROUP_ROOT, self_cgroup: str = "/proc/self/cgroup") -> float | None:
    """CPUs' worth of time this process's cgroup may use (quota / period), or None if unlimited.

    Reads cgroup v2 ``cpu.max`` (``"200000 100000"`` is 2 CPUs, ``"max 100000"`` no limit)
    from the process's own cgroup up to the root, or v1 ``cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us``; the smallest limit found wins.
    """
    try:
        with open(self_cgroup, encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2: one unified hierarchy
            dirs, reader = [os.path.join(root, path.lstrip("/"))], _read_cpu_max
        elif "cpu" in controllers.split(","):
            mount = os.path.join(root, controllers)
            if not os.path.isdir(mount):
                mount = os.path.join(root, "cpu")
            dirs, reader = [os.path.join(mount, path.lstrip("/"))], _read_cfs_quota
        else:
            continue
        while True:  # the process's cgroup and each parent up to the hierarchy's root
            here = dirs[-1]
            parent = os.path.dirname(here)
            if len(parent) < len(root) or parent == here:
                break
            dirs.append(parent)
        found += [q for q in map(reader, dirs) if q is not None]
    return min(found) if found else None


def _read_cpu_max(directory: str) -> float | None:
    try:
        with open(os.path.join(directory, "cpu.max"), encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _read_cfs_quota(directory: str) -> float | None:
    try:
        with open(os.path.join(directory, "cpu.cfs_quota_us"), encoding="ascii") as fh:
            quota = int(fh.read().strip())
        with open(os.path.join(directory, "cpu.cfs_period_us"), encoding="ascii") as fh:
            period = int(fh.read().strip())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None


def running_tasks(stat: str = "/proc/stat") -> int | None:
    """Tasks runnable on this machine right now (``procs_running``), or None if unknown."""
    try:
        with open(stat, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("procs_running"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def configure_threads(num_threads: int | None = None, share: int = 1) -> int:
    """Set torch's intra-op threads to the physical cores divided among ``share`` processes.

    Args:
        num_threads: explicit thread count; ``None`` picks physical cores // share.
        share: how many processes on this machine split the cores (distributed training).

    Returns:
        The thread count in effect.
    """
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"--threads ({num_threads}) must be >= 1")
    limit = MAX_THREADS_PER_CPU * usable_cpus()
    if num_threads is not None and num_threads > limit:
        raise ConfigError(
            f"--threads ({num_threads}) is more than {MAX_THREADS_PER_CPU} per CPU this process "
            f"may use ({usable_cpus()} CPUs, so at most {limit}); leave --threads unset to use "
            "the physical cores"
        )
    import torch

    n = num_threads or max(1, physical_cores() // max(1, share))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run a block with ``num_threads`` torch threads, then restore the previous count.

    Streaming runs one tiny step at a time; extra threads only add synchronisation, which
    on a busy machine costs milliseconds per call.
    """
    import torch

    before = torch.get_num_threads()
    if before != num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def choose_device(name: str = "auto") -> torch.device:
    """Resolve ``auto`` to CUDA when a GPU is present, else CPU."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"--device '{name}' is not one of: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda was requested but no CUDA GPU is available; use --device cpu"
        )
    return torch.device(name)


@contextmanager
def on_signals(handler: Callable[[], None], *signals: int) -> Iterator[None]:
    """Call ``handler()`` when one of ``signals`` arrives during the block, then restore.

    Python delivers signals to the main thread only; elsewhere (a notebook's worker
    thread, a server) the block runs without the handler. ``handler`` may raise, for
    example ``KeyboardInterrupt`` on a second Ctrl-C.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def called(signum: int, frame: object) -> None:
        handler()

    old = {s: signal.signal(s, called) for s in signals}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


@contextmanager
def quiet_loggers(
    names: Callable[[], list[str]] | list[str], level: int = logging.ERROR
) -> Iterator[None]:
    """Raise the given loggers to ``level`` for the block, then restore their levels.

    Args:
        names: logger names, or a function that lists them when the block starts (for
            loggers that exist only once a library has created them).
        level: the level they get for the block.
    """
    loggers = [logging.getLogger(n) for n in (names() if callable(names) else names)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, previous in zip(loggers, levels, strict=True):
            lg.setLevel(previous)
