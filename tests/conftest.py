"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# Property tests draw the same examples on every run by default, so a test run (and CI)
# passes or fails on the code alone. HYPOTHESIS_PROFILE=explore draws fresh random examples
# on every run to hunt for new failures (`make explore`); a failure it finds becomes a plain
# regression test.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Tests run on CPU with few threads so that the suite behaves the same on 2-core machines.
torch.set_num_threads(min(2, torch.get_num_threads()))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, input: str | None = None):
    """Run ``python -m elman ARGS`` in a real subprocess and return the CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "elman", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input,
    )


@pytest.fixture
def cli():
    """The ``run_cli`` helper as a fixture."""
    return run_cli


def selected_params(request: pytest.FixtureRequest, param: str) -> set:
    """Values of ``param`` among the collected tests of the requesting module (after -k)."""
    items = getattr(request.session, "items", [])
    mine = [i for i in items if i.module is request.module and hasattr(i, "callspec")]
    return {i.callspec.params[param] for i in mine if param in i.callspec.params}


def run_cli_many(cases: dict[str, list[str]], cwd: Path | None = None) -> dict:
    """Run many ``elman`` commands at once, one real subprocess each; ``{name: result}``."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        futures = {name: pool.submit(run_cli, *args, cwd=cwd) for name, args in cases.items()}
        return {name: fut.result() for name, fut in futures.items()}


def use_step_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Body of a fixture parametrised over ``native`` / ``python``: the fused recurrences run
    their compiled step loops (batches split into blocks from one row up, over 2 threads, and
    LSTMs fused at any size) or their Python loops, as on a machine without a compiler."""
    from elman.models import native, switches

    if request.param == "python":
        monkeypatch.setenv(switches.ENV_NO_NATIVE, "1")
    else:
        monkeypatch.delenv(switches.ENV_NO_NATIVE, raising=False)
        if native.ops() is None:
            pytest.skip("the compiled step loops are not available on this machine")
        monkeypatch.setattr(switches, "MIN_BLOCK_ROWS", 1)  # split even 3 rows over threads
        monkeypatch.setattr(switches, "FUSED_LSTM_MIN_WORK", 0)  # fuse even tiny LSTMs
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        request.addfinalizer(lambda: torch.set_num_threads(threads))
    return str(request.param)
