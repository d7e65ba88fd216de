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
# Many tests compare two trainings bit for bit; on a busy test machine the thread governor
# could move one of them to another thread count (equal only to float rounding). The
# governor has its own tests (test_training_budget.py), which clear this.
os.environ["ELMAN_FIXED_THREADS"] = "1"


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


def write_panel(path: Path, n_series: int = 3, months: int = 48, seed: int = 0) -> Path:
    """A small CSV of ``n_series`` monthly series (long format, ``series`` id column)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    stamps = [f"{2010 + m // 12}-{m % 12 + 1:02d}" for m in range(months)]
    lines = ["month,series,value"]
    for k in range(n_series):
        level = 10.0 * (k + 1)
        for m, stamp in enumerate(stamps):
            value = level + 3 * np.sin(2 * np.pi * m / 12) + rng.normal(0, 0.3)
            lines.append(f"{stamp},s{k},{value:.4f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def airline_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM run on builtin:airline (horizon 6, direct), trained once per session."""
    from elman.config import Config
    from elman.runs.workflows import train_run

    out = tmp_path_factory.mktemp("serve") / "air"
    cfg = Config().replace(source="builtin:airline", model="lstm", horizon=6, hidden_size=8,
                           epochs=2, seed=0)  # fmt: skip
    train_run(out, cfg)
    return out


@pytest.fixture(scope="session")
def panel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny global GRU run on three monthly series (ids s0, s1, s2), trained once."""
    from elman.config import Config
    from elman.runs.workflows import train_run

    root = tmp_path_factory.mktemp("serve")
    data = write_panel(root / "panel.csv")
    cfg = Config().replace(source=str(data), series_id="series", model="gru", horizon=3,
                           lookback=12, hidden_size=8, epochs=2, seed=0)  # fmt: skip
    train_run(root / "panel", cfg)
    return root / "panel"


class ServerProcess:
    """``elman serve`` in a real subprocess: its URL, its token, and how to stop it."""

    def __init__(self, run: Path, *args: str, timeout: float = 120) -> None:
        import re
        import time

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elman", "serve", str(run), "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.token: str | None = None
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"elman serve did not start: {self.proc.stderr.read()}")
            if line.startswith("token"):
                self.token = line.rsplit(" ", 1)[1].strip()
            found = re.search(r"on (http://\S+) ", line)
            if found:
                self.url = found.group(1)
                break

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def server_process():
    """Start ``elman serve`` processes; each is stopped at the end of the test."""
    started: list[ServerProcess] = []

    def start(run: Path, *args: str) -> ServerProcess:
        started.append(ServerProcess(run, *args))
        return started[-1]

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()
