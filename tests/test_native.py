"""Building, caching and falling back from the compiled step loops; the allocator setting.

The numbers of the compiled loops are tested in ``test_fused.py`` against torch's modules.
Here: the library builds with the machine's compiler, every way a build can fail leaves
training on the Python loops with one warning, and real processes agree on the numbers
either way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from elman.models import native, switches

TRAIN_ONE_STEP = """
import json, torch
from elman.models import GRU, LSTM, Elman
from elman.models import switches
switches.FUSED_LSTM_MIN_WORK = 0
torch.manual_seed(0)
out = {}
for name, model in (("elman", Elman(2, 8, 1)), ("gru", GRU(2, 1, 8)), ("lstm", LSTM(2, 1, 8))):
    model = model.double()
    x = torch.randn(37, 6, 2, dtype=torch.float64)
    model(x)[0].square().sum().backward()
    out[name] = [p.grad.flatten().tolist() for p in model.parameters()]
from elman.models import native
out["status"] = native.status()
print(json.dumps(out))
"""


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300
    )


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``native`` as if never loaded, with an empty cache; restored afterwards."""
    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setattr(native, "_failure", None)
    monkeypatch.delenv(switches.ENV_NO_NATIVE, raising=False)
    monkeypatch.setenv(switches.ENV_CACHE_DIR, str(tmp_path / "cache"))
    return tmp_path


def test_the_library_builds_wherever_a_compiler_exists() -> None:
    """On a machine with the compiler (every CI machine), a broken build fails here."""
    if shutil.which(native.compiler()[0]) is None:
        pytest.skip(f"no {native.compiler()[0]} on this machine")
    assert native.load() is not None
    assert native.status() == "on"


@pytest.mark.parametrize(
    ("cxx", "reason"),
    [
        ("/nonexistent/c++", "no C++ compiler: '/nonexistent/c++' not found (set $CXX)"),
        ("false", "compiling recurrence.cpp failed: exit status 1"),
    ],
)
def test_a_failed_build_warns_once_and_falls_back(
    fresh: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    cxx: str, reason: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("CXX", cxx)
    with caplog.at_level(logging.WARNING, logger="elman.models.native"):
        assert native.ops() is None
        assert native.ops() is None  # remembered: no second attempt, no second warning
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert reason in warnings[0]
    assert "training uses the Python step loops" in warnings[0]
    assert native.status() == f"unavailable ({reason})"
    assert not list((fresh / "cache").glob("**/*.so"))  # no half-written library left


def test_an_unwritable_cache_falls_back(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = fresh / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(switches.ENV_CACHE_DIR, str(blocker))
    with pytest.raises(native.NativeBuildError, match="cannot write the cache"):
        native.build()
    assert native.ops() is None


def test_disabling_needs_no_build_and_says_so(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(switches.ENV_NO_NATIVE, "1")
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert native.ops() is None
    assert native.status() == "off (ELMAN_NO_NATIVE is set)"
    assert native._failure is None  # nothing was attempted


def test_cache_name_follows_source_compiler_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    base = native.library_path()
    monkeypatch.setenv("CXX", "g++ -DANOTHER")
    assert native.library_path() != base
    monkeypatch.delenv("CXX")
    monkeypatch.setattr(native, "FLAGS", (*native.FLAGS, "-g"))
    assert native.library_path() != base


def test_processes_with_and_without_a_compiler_agree(tmp_path: Path) -> None:
    """A real process that cannot build trains on the Python loops: one warning, same numbers."""
    without = _run_python(
        TRAIN_ONE_STEP, CXX="/nonexistent/c++", ELMAN_CACHE_DIR=str(tmp_path / "empty")
    )
    assert without.returncode == 0, without.stderr
    assert without.stderr.count("compiled recurrences unavailable") == 1
    with_native = _run_python(TRAIN_ONE_STEP)
    assert with_native.returncode == 0, with_native.stderr
    a, b = json.loads(without.stdout), json.loads(with_native.stdout)
    assert a.pop("status").startswith("unavailable (no C++ compiler")
    expected = "on" if shutil.which(native.compiler()[0]) else b["status"]
    assert b.pop("status") == expected
    for name in a:
        for ga, gb in zip(a[name], b[name], strict=True):
            assert ga == pytest.approx(gb, rel=1e-9, abs=1e-12), name


@pytest.mark.slow
def test_build_ahead_of_time_then_reuse(tmp_path: Path) -> None:
    """``python -m elman.kernels`` builds into an empty cache, then reuses what it built."""
    if shutil.which(native.compiler()[0]) is None:
        pytest.skip(f"no {native.compiler()[0]} on this machine")
    env = {"ELMAN_CACHE_DIR": str(tmp_path)}
    code = "from elman.kernels import main; raise SystemExit(main())"
    first = _run_python(code, **env)
    assert first.returncode == 0, first.stderr
    assert "compiled recurrences ready" in first.stdout
    built = list((tmp_path / "native").glob("recurrence-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    second = _run_python(code, **env)
    assert second.returncode == 0 and str(built[0]) in second.stdout
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert not list((tmp_path / "native").glob("*.tmp"))


# ------------------------------------------------------------------- allocator setting

# A training step in miniature: several large buffers alive at once, all freed at the end.
# mallinfo2().hblkhd is the memory glibc holds in mmap'ed blocks (glibc >= 2.33).
COUNT_FAULTS = """
import ctypes, resource, torch
from elman.training.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = keep_freed_memory()
start = libc.mallinfo2().hblkhd
probe = torch.ones(7_500_000)  # 30 MB: an mmap'ed block unless the threshold was raised
mmapped = libc.mallinfo2().hblkhd - start
del probe
def step():
    held = [torch.ones(5_000_000) for _ in range(6)]  # 6 x 20 MB
    del held
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(tuned, mmapped, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_buffers_are_reused_without_page_faults() -> None:
    tuned = _run_python(COUNT_FAULTS)
    plain = _run_python(COUNT_FAULTS, ELMAN_NO_MALLOC_TUNING="1")
    assert tuned.returncode == 0 and plain.returncode == 0, tuned.stderr + plain.stderr
    on, mmapped_on, faults_on = tuned.stdout.split()
    off, mmapped_off, _ = plain.stdout.split()
    assert (on, off) == ("True", "False")
    assert int(mmapped_off) >= 30_000_000  # glibc's default: large blocks are mmap'ed...
    assert int(mmapped_on) < 1_000_000  # ...with the setting they come from the heap
    # and 10 steps of 120 MB reuse the same pages (about 300,000 faults if they did not)
    assert int(faults_on) < 1_000
