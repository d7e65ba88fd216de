"""Compiled step loops for the fused CPU recurrences (``elman/csrc/recurrence.cpp``).

The fused Elman, GRU and LSTM recurrences of :mod:`elman.models.fused` run their step
loops in C++ when this library is available, and in Python otherwise. Both give the same
numbers (to float rounding: the C++ loops split the batch into blocks, one per thread,
which changes the blocking of the matrix products).

The library is compiled with the machine's C++ compiler (``$CXX``, else ``g++``) against
the installed torch, by ``python -m elman.kernels`` (the set-up step runs it) or on
the first fused training step, and cached on disk under a name derived from the source,
the torch version and the compiler flags, so a new torch or a changed source builds anew.
The cache lives in ``$ELMAN_CACHE_DIR/native`` (default ``~/.cache/elman/native``).
Builds write to a temporary file and rename it into place, so concurrent processes (the
ranks of a distributed run) may build at once.

When it cannot be built or loaded (no compiler, no writable cache, an unusual torch
build), elman logs one warning and uses the Python step loops. ``ELMAN_NO_NATIVE=1``
turns the compiled loops off without a warning. Both variables, and the tunables passed to
the loops, are named in :mod:`elman.models.switches`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from elman.models import switches

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent.parent / "csrc" / "recurrence.cpp"
# -march=native: the library is built for, and cached under the instruction set of, the CPU
# it runs on.
FLAGS = ("-O3", "-march=native", "-std=c++20", "-shared", "-fPIC", "-fopenmp", "-w")

_loaded: Any = None  # torch.ops.elman_native once loaded
_failure: str | None = None  # why it could not be, once tried


class NativeBuildError(RuntimeError):
    """The compiled recurrences could not be built or loaded; the message says why."""


def disabled() -> bool:
    """Whether the environment turns the compiled loops off (``ELMAN_NO_NATIVE=1``)."""
    return switches.env_flag(switches.ENV_NO_NATIVE)


def cache_dir() -> Path:
    """Folder of the built libraries."""
    root = os.environ.get(switches.ENV_CACHE_DIR) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "elman"
    )
    return Path(root) / "native"


def compiler() -> list[str]:
    """The C++ compiler command: ``$CXX`` (may hold options) or ``g++``."""
    return shlex.split(os.environ.get("CXX") or "g++")


def compile_command(output: Path) -> list[str]:
    """The compiler command line that builds the library into ``output``."""
    from torch.utils import cpp_extension

    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    libdirs = cpp_extension.library_paths()
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"
    links = [f"-L{d}" for d in libdirs] + [f"-Wl,-rpath,{d}" for d in libdirs]
    return [
        *compiler(), *FLAGS, abi, *includes, str(SOURCE), *links,
        "-lc10", "-ltorch_cpu", "-ltorch", "-o", str(output),
    ]  # fmt: skip


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), so a cache shared between machines never serves
    code built for another instruction set."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def library_path() -> Path:
    """Where the library for this source, torch and compiler is (or will be) cached."""
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    parts = (torch.__version__, sysconfig.get_platform(), _cpu_flags(), *compiler(), *FLAGS)
    for part in parts:
        key.update(part.encode() + b"\0")
    return cache_dir() / f"recurrence-{key.hexdigest()[:16]}.so"


def build(force: bool = False) -> Path:
    """Compile the library into the cache unless it is there; return its path.

    Raises:
        NativeBuildError: no compiler, an unwritable cache or a failed compile.
    """
    out = library_path()
    if out.exists() and not force:
        return out
    cmd = compiler()
    if shutil.which(cmd[0]) is None:
        raise NativeBuildError(f"no C++ compiler: {cmd[0]!r} not found (set $CXX)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise NativeBuildError(f"cannot write the cache {out.parent}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        log.info("compiling elman's recurrence kernels into %s (once, about 10 s)", out)
        proc = subprocess.run(
            compile_command(tmp), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            detail = lines[-1] if lines else f"exit status {proc.returncode}"
            raise NativeBuildError(f"compiling {SOURCE.name} failed: {detail}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load() -> Any:
    """Build if needed and load the library; return ``torch.ops.elman_native``.

    Raises:
        NativeBuildError: it could not be built or loaded.
    """
    global _loaded
    if _loaded is None:
        path = build()
        try:
            torch.ops.load_library(str(path))
        except (OSError, RuntimeError) as exc:
            raise NativeBuildError(f"loading {path} failed: {exc}") from exc
        _loaded = torch.ops.elman_native
    return _loaded


def ops() -> Any:
    """``torch.ops.elman_native``, or ``None`` when disabled or not available.

    The first call builds and loads the library; a failure is logged once as a warning
    and remembered, so later calls return ``None`` at once.
    """
    global _failure
    if disabled() or _failure is not None:
        return None
    if _loaded is not None:
        return _loaded
    try:
        return load()
    except NativeBuildError as exc:
        _failure = str(exc)
        log.warning(
            "compiled recurrences unavailable (%s); training uses the Python step loops "
            "(same results, slower). Set %s=1 to silence this.", exc, switches.ENV_NO_NATIVE,
        )  # fmt: skip
        return None


def status() -> str:
    """One line on whether the compiled loops are in use and why not, for reports."""
    if disabled():
        return f"off ({switches.ENV_NO_NATIVE} is set)"
    return "on" if ops() is not None else f"unavailable ({_failure})"


def main(argv: list[str] | None = None) -> int:
    """``python -m elman.kernels [--force]``: build ahead of time and report."""
    force = "--force" in (argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    try:
        path = build(force=force)
        load()
    except NativeBuildError as exc:
        print(f"elman: compiled recurrences not built: {exc}; the Python step loops will run")
        return 0  # not an error: training falls back
    print(f"elman: compiled recurrences ready in {time.perf_counter() - start:.1f} s: {path}")
    return 0

