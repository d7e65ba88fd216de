"""Shared pieces of the benchmark scripts: machine description and result files.

Every script records where its numbers came from (CPU model, cores, load, torch version,
threads) and writes ``benchmarks/results/NAME.json`` plus ``NAME.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tomllib
import torch

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, 1-minute load, torch version and thread count."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_1min": round(load, 2),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def machine_line(m: dict[str, Any]) -> str:
    """One Markdown line describing the machine."""
    gpu = f", GPU {m['cuda']}" if m.get("cuda") else ""
    return (
        f"Machine: {m['cpu']}, {m['cores']} logical cores{gpu}, load {m['load_1min']} at start; "
        f"torch {m['torch']}, {m['threads']} threads, Python {m['python']}."
    )


def write_results(name: str, report: dict[str, Any], table: str, out: Path = RESULTS) -> Path:
    """Write ``NAME.json`` and ``NAME.md`` (machine line + table) atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in (
        (".json", json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"),
        (".md", machine_line(report["machine"]) + "\n\n" + table),
    ):
        path = out / f"{name}{suffix}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return out / f"{name}.md"


def timings(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> list[float]:
    """Wall seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / mean of a list of seconds."""
    s = sorted(samples)
    return {
        "p50": statistics.median(s),
        "p99": s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))],
        "mean": statistics.fmean(s),
    }


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table from a header and rows of printable cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``NAME=VALUE`` options, each value read as TOML (``0.01``, ``false``, ``"gru"``);
    a value that is not TOML is taken as a string."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE, e.g. weight_decay=0.01")
        try:
            out[name.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[name.strip()] = text
    return out
