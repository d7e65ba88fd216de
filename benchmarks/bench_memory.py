"""W5, memory: peak resident memory while training an LSTM (H=64, lookback 168) on a long series.

Each run is a fresh subprocess (this script with ``--child``), so its peak is its own: the
child imports torch and elman, builds a noisy sine of ``N`` points as a float64 numpy array
(in chunks, so that building it needs no temporaries of its size), and fits
``Forecaster("lstm", hidden_size=64, lookback=168, horizon=24)`` on it (the array, as a user
passes one) for ``--epochs`` epochs of at most ``--max-batches`` batches of 64 random
windows, with a 2,000-point validation part. It reports ``VmHWM`` (peak resident set) from
``/proc/self/status`` (``resource.getrusage`` where that is missing) and the resident set
after the imports, after building the data and after the fit.

Runs: 10,000 points (the fixed cost: interpreter, torch, the fit's machinery), 1 million
and 10 million points; and a 200,000-point run with the default validation part (10% of
the series), whose validation and interval calibration passes grow with the series.

The goal: under 1 GiB at 10 million points, close to the data size plus the model. The
table shows each peak, its growth over the 10,000-point run, the data size (float64 as
given, 8 bytes a point) and the model size (float32 parameters).
Results: ``benchmarks/results/memory.{json,md}``.

Usage::

    python benchmarks/bench_memory.py             # the four runs above
    python benchmarks/bench_memory.py --quick     # 10,000 and 1 million points, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MIB = 2**20
CHUNK = 1_000_000  # points generated at a time
VAL_SIZE = 2000  # validation points (the default, 10% of the series, is measured apart)
AUTO_VAL_POINTS = 200_000  # series length of the run with the default validation part


def status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or ``None``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_mib() -> float:
    """Peak resident set of this process in MiB."""
    hwm = status_kib("VmHWM")
    if hwm is None:  # ru_maxrss is in KiB on Linux, bytes on macOS
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return raw / (MIB if sys.platform == "darwin" else 1024)
    return hwm / 1024


def rss_mib() -> float | None:
    """Current resident set in MiB (Linux only)."""
    kib = status_kib("VmRSS")
    return kib / 1024 if kib is not None else None


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Train once and measure; runs in its own process."""
    import numpy as np
    import torch

    from elman.forecaster import Forecaster

    after_import = rss_mib()
    (n,) = args.points
    val_size = None if args.val_size == "auto" else int(args.val_size)
    y = np.empty(n)  # [N] float64, filled chunk by chunk
    rng = np.random.default_rng(0)
    for lo in range(0, n, CHUNK):
        t = np.arange(lo, min(n, lo + CHUNK), dtype=np.float64)
        y[lo : lo + len(t)] = np.sin(2 * math.pi * t / 24.0) + 0.1 * rng.standard_normal(len(t))
    after_data = rss_mib()
    f = Forecaster(
        "lstm", hidden_size=64, lookback=168, horizon=24, epochs=args.epochs,
        max_batches=args.max_batches, batch_size=64, val_size=val_size,
        patience=args.epochs + 1, progress=False, threads=args.threads, ensemble="none",
    )  # fmt: skip
    t0 = time.perf_counter()
    f.fit(y)
    seconds = time.perf_counter() - t0
    assert f.model is not None
    params = sum(p.numel() for p in f.model.parameters())
    return {
        "points": n,
        "val_size": args.val_size,
        "threads": torch.get_num_threads(),
        "data_mib": y.nbytes / MIB,
        "model_parameters": params,
        "model_mib": sum(p.numel() * p.element_size() for p in f.model.parameters()) / MIB,
        "rss_after_import_mib": after_import,
        "rss_after_data_mib": after_data,
        "rss_after_fit_mib": rss_mib(),
        "peak_mib": peak_mib(),
        "fit_seconds": seconds,
        "epochs": args.epochs,
        "max_batches": args.max_batches,
    }


def run_child(points: int, val: str, args: argparse.Namespace) -> dict[str, Any]:
    """This script in a subprocess with ``--child``; its JSON line back."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--points", str(points),
           "--epochs", str(args.epochs), "--max-batches", str(args.max_batches),
           "--val-size", val]  # fmt: skip
    cmd += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child for {points} points failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(report: dict[str, Any]) -> str:
    """The runs as a Markdown table; growth is measured from the smallest run's peak."""
    from common import md_table  # type: ignore[import-not-found]

    fixed = min(report["results"], key=lambda r: r["points"])["peak_mib"]
    rows = []
    for r in report["results"]:
        grown = r["peak_mib"] - fixed
        rows.append([
            f"{r['points']:,}", r["val_size"], f"{r['data_mib']:.1f}", f"{r['model_mib']:.3f}",
            f"{r['rss_after_import_mib']:.0f}", f"{r['rss_after_data_mib']:.0f}",
            f"{r['rss_after_fit_mib']:.0f}", f"{r['peak_mib']:.0f}", f"{grown:.0f}",
            f"{grown / r['data_mib']:.1f}x" if r["points"] > 10_000 else "-",
            "yes" if r["peak_mib"] < 1024 else "no", f"{r['fit_seconds']:.1f}",
        ])  # fmt: skip
    s = report["settings"]
    head = ["points", "validation points", "data MiB (float64)", "model MiB",
            "RSS after import", "RSS with data", "RSS after fit", "peak RSS MiB",
            "peak growth over smallest run", "growth / data", "peak < 1 GiB",
            "fit s"]  # fmt: skip
    return (
        f"LSTM, 64 hidden units, lookback 168, horizon 24, batch 64; {s['epochs']} epoch(s) of "
        f"at most {s['max_batches']} batches; each row in a fresh process. RSS in MiB. "
        f"Load {report['load_before_after']} (1-minute average before, after).\n\n"
        + md_table(head, rows)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10,000 and 1 million points, 1 epoch")
    p.add_argument("--points", type=int, nargs="+", help="series lengths (1e4 1e6 1e7)")
    p.add_argument("--epochs", type=int, default=3, help="epochs (3)")
    p.add_argument("--max-batches", type=int, default=50, help="batches per epoch (50)")
    p.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    p.add_argument("--val-size", default=str(VAL_SIZE), help=argparse.SUPPRESS)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    if args.quick:
        args.epochs = 1
    points = args.points or ([10_000, 1_000_000] if args.quick else [10_000, 1_000_000, 10_000_000])
    runs = [(n, str(VAL_SIZE)) for n in points]
    if not args.quick:  # the default validation part, 10% of the series: 20,000 points
        runs.append((AUTO_VAL_POINTS, "auto"))
    from common import machine_info, write_results  # type: ignore[import-not-found]

    load0 = machine_info()["load_1min"]
    results = []
    for n, val in runs:
        results.append(run_child(n, val, args))
        r = results[-1]
        print(f"{n:>12,} points, val {val}: peak {r['peak_mib']:.0f} MiB")
    report = {
        "benchmark": "memory",
        "machine": machine_info(),
        "load_before_after": [load0, machine_info()["load_1min"]],
        "settings": {
            "epochs": args.epochs,
            "max_batches": args.max_batches,
            "runs": runs,
            "threads": args.threads,
        },  # fmt: skip
        "results": results,
    }
    write_results("memory_quick" if args.quick else "memory", report, table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
