"""Threads and precision: training speed with 1 vs 2 torch threads, and float32 vs bfloat16.

One training problem throughout: a noisy sine (5,000 points, period 50, noise 0.1), horizon
12 (direct), lookback 64, batch 64, ``--epochs`` epochs of ``--max-batches`` random batches,
500 validation points, Adam, seed 0; the same windows for every run.

* Threads: each setting runs in a fresh process (the OpenMP runtime reads its environment
  once): ``--threads 1``, ``--threads 2``, and ``--threads 2`` with ``OMP_WAIT_POLICY=PASSIVE``
  (idle OpenMP threads sleep instead of spinning). Reported: seconds per epoch
  (training and validation) and training windows per second, per model and hidden size.
* Precision: ``TrainConfig.precision`` ``fp32`` against ``bf16`` (``torch.autocast`` around
  the forward pass and the loss, weights float32; see :mod:`elman.training.precision`), in this
  process with ``--threads`` threads. Reported: seconds per epoch and the best validation
  MSE, the accuracy cost of bfloat16. Skipped, with a note, on a CPU without bfloat16.

Results: ``benchmarks/results/precision.{json,md}``.

Usage::

    python benchmarks/bench_precision.py            # lstm, gru, elman at H = 64 and 256
    python benchmarks/bench_precision.py --quick    # lstm at H = 64, 2 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, machine_info, md_table, write_results  # type: ignore[import-not-found]

from elman.data.synthetic import noisy_sine
from elman.forecaster import Forecaster
from elman.training.precision import bf16_supported

THREAD_SETTINGS = {  # name -> (threads, extra environment)
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
}


def fit_once(model: str, hidden: int, args: argparse.Namespace, **opts: Any) -> dict[str, Any]:
    """One fit of the fixed problem; timing and loss from its history."""
    y = noisy_sine(5000, noise=0.1, seed=0, period=50.0)
    f = Forecaster(
        model, hidden_size=hidden, horizon=12, lookback=64, batch_size=64, val_size=500,
        epochs=args.epochs, max_batches=args.max_batches, patience=args.epochs + 1,
        scheduler="none", progress=False, ensemble="none", **opts,
    )  # fmt: skip
    f.fit(y)
    assert f.train_state is not None
    hist = f.train_state.history[1:] or f.train_state.history  # the first epoch warms up
    windows = args.max_batches * 64
    return {
        "model": model,
        "hidden_size": hidden,
        "seconds_per_epoch": sum(r.seconds for r in hist) / len(hist),
        "windows_per_s": windows * len(hist) / sum(r.seconds for r in hist),
        "best_val_loss": f.train_state.best_loss,
        "threads": torch.get_num_threads(),
    }


def cases(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [(m, h) for m in args.models for h in args.hidden]


def thread_child(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every case with ``--threads`` threads (runs in a fresh process)."""
    return [fit_once(m, h, args, threads=args.threads) for m, h in cases(args)]


def threads_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each thread setting in its own process."""
    rows = []
    for name, (n, env) in THREAD_SETTINGS.items():
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--threads", str(n),
               "--epochs", str(args.epochs), "--max-batches", str(args.max_batches),
               "--models", *args.models, "--hidden", *map(str, args.hidden)]  # fmt: skip
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **env}, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        for r in json.loads(done.stdout.strip().splitlines()[-1]):
            rows.append({"setting": name, **r})
            print(f"{name:36s} {r['model']:5s} H={r['hidden_size']:<4d} "
                  f"{r['seconds_per_epoch']:.3f} s/epoch")  # fmt: skip
    return rows


def precision_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    """fp32 and bf16 fits of every case, alternating, in this process."""
    rows = []
    for m, h in cases(args):
        for precision in ("fp32", "bf16"):
            r = fit_once(m, h, args, precision=precision, threads=args.threads)
            rows.append({"precision": precision, **r})
            print(f"{precision} {m:5s} H={h:<4d} {r['seconds_per_epoch']:.3f} s/epoch  "
                  f"val {r['best_val_loss']:.5f}")  # fmt: skip
    return rows


def tables(report: dict[str, Any]) -> str:
    s = report["settings"]
    out = [
        f"Noisy sine (5,000 points), horizon 12 direct, lookback 64, batch 64, {s['epochs']} "
        f"epochs of {s['max_batches']} batches, 500 validation points; seconds per epoch "
        f"exclude the first epoch. Load {report['load_before_after']} (1-minute average "
        "before, after).\n\n### Threads\n\n"
    ]
    rows = []
    for r in report["threads"]:
        one = next(
            b for b in report["threads"]
            if b["setting"] == "1 thread" and (b["model"], b["hidden_size"])
            == (r["model"], r["hidden_size"])
        )  # fmt: skip
        rows.append([r["model"], r["hidden_size"], r["setting"], f"{r['seconds_per_epoch']:.3f}",
                     f"{r['windows_per_s']:,.0f}",
                     f"{one['seconds_per_epoch'] / r['seconds_per_epoch']:.2f}x"])  # fmt: skip
    out.append(md_table(["model", "H", "setting", "s / epoch", "windows / s", "vs 1 thread"],
                        rows))  # fmt: skip
    n = s["threads"] or "default"
    out.append(f"\n### Precision ({n} thread{'' if n == 1 else 's'})\n\n")
    if not report["precision"]:
        out.append(f"Skipped: {report['precision_note']}\n")
        return "".join(out)
    rows = []
    for r in report["precision"]:
        fp = next(
            b for b in report["precision"]
            if b["precision"] == "fp32" and (b["model"], b["hidden_size"])
            == (r["model"], r["hidden_size"])
        )  # fmt: skip
        rows.append([r["model"], r["hidden_size"], r["precision"],
                     f"{r['seconds_per_epoch']:.3f}",
                     f"{fp['seconds_per_epoch'] / r['seconds_per_epoch']:.2f}x",
                     f"{r['best_val_loss']:.5f}",
                     f"{100 * (r['best_val_loss'] / fp['best_val_loss'] - 1):+.1f}%"])  # fmt: skip
    out.append(md_table(["model", "H", "precision", "s / epoch", "speed vs fp32",
                         "best val MSE", "val MSE vs fp32"], rows))  # fmt: skip
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="lstm at H = 64, 2 epochs")
    p.add_argument("--models", nargs="+", default=["lstm", "gru", "elman"])
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    p.add_argument("--epochs", type=int, default=5, help="epochs per fit (5)")
    p.add_argument("--max-batches", type=int, default=15, help="batches per epoch (15)")
    p.add_argument("--threads", type=int, help="threads of the precision part (default: cores)")
    p.add_argument("--skip-threads", action="store_true", help="only the precision part")
    p.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(thread_child(args)))
        return 0
    if args.quick:
        args.models, args.hidden, args.epochs, args.max_batches = ["lstm"], [64], 2, 10
    load0 = machine_info()["load_1min"]
    threads = [] if args.skip_threads else threads_part(args)
    cpu = torch.device("cpu")
    supported = bf16_supported(cpu)
    note = "" if supported else (
        f"this CPU has no native bfloat16 (capability "
        f"{torch.backends.cpu.get_cpu_capability()})"
    )  # fmt: skip
    precision = precision_part(args) if supported else []
    keys = ("models", "hidden", "epochs", "max_batches", "threads", "quick")
    report = {
        "benchmark": "precision",
        "machine": machine_info(),
        "load_before_after": [load0, machine_info()["load_1min"]],
        "settings": {k: getattr(args, k) for k in keys},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": threads,
        "precision": precision,
        "precision_note": note,
    }
    name = "precision_quick" if args.quick else "precision"
    write_results(name, report, tables(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
