"""Shared test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# Tests run on CPU with few threads so that the suite behaves the same on 2-core machines.
torch.set_num_threads(min(2, torch.get_num_threads()))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, input: str | None = None):
    """Run ``python -m elman ARGS`` in a real subprocess and return the CompletedProcess."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "elman", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, input=input,
    )


@pytest.fixture
def cli():
    """The ``run_cli`` helper as a fixture."""
    return run_cli
