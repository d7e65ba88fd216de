"""Data-parallel training: 1 process against 2 processes (torchrun + DDP, gloo) on CPU.

Trains one global model on ``builtin:many_series`` (100 related monthly series) with the
real command line, once per setting and global batch size:

* ``1 process, 1 thread``:   ``elman train ... --threads 1``
* ``1 process, 2 threads``:  ``elman train ... --threads 2`` (what the cores give one process)
* ``2 processes, 1 thread``: ``elman train ... --threads 1 --nproc 2`` (each rank half a batch)

Every setting sees the same global batches in the same order, so the losses agree and only
the speed differs. Throughput is read from the run's ``history.csv``: training windows per
second of each epoch (the epoch's seconds include its validation pass), median over the
epochs after the first. The wall time of the whole command (start-up, rendezvous, hold-out
evaluation, files) is reported beside it. Results go to
``benchmarks/results/distributed.{json,md}``. It also times one gloo all-reduce of the
model's gradient (and of 2 numbers) between 2 local processes: the fixed cost every step
pays.

Usage::

    python benchmarks/bench_distributed.py            # 5 epochs, batches 64 and 256
    python benchmarks/bench_distributed.py --quick    # 2 epochs, batch 64
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine_info, md_table, write_results
from safetensors.torch import load_file

SETTINGS = {  # name -> extra command-line flags
    "1 process, 1 thread": ["--threads", "1"],
    "1 process, 2 threads": ["--threads", "2"],
    "2 processes, 1 thread each": ["--threads", "1", "--nproc", "2"],
}
BASE = [
    "train",
    "--data",
    "builtin:many_series",
    "--horizon",
    "12",
    "--test-size",
    "12",
    "--model",
    "lstm",
    "--hidden-size",
    "64",
    "--no-progress-bar",
    "--ensemble",
    "none",  # the network's training, as measured
]


def run_setting(flags: list[str], batch: int, epochs: int, out: Path) -> dict[str, Any]:
    """Run one ``elman train`` and read its per-epoch history."""
    cmd = [sys.executable, "-m", "elman", *BASE, "--batch-size", str(batch)]
    cmd += ["--epochs", str(epochs), "--patience", str(epochs + 1), "--out", str(out), *flags]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    with open(out / "history.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    timed = rows[1:] or rows
    params = sum(
        t.numel() for k, t in load_file(out / "model.safetensors").items() if k.startswith("model.")
    )
    return {
        "wall_s": round(wall, 2),
        "epoch_s": round(statistics.median(float(r["seconds"]) for r in timed), 3),
        "windows_per_s": round(statistics.median(float(r["samples_per_s"]) for r in timed), 1),
        "final_train_loss": float(rows[-1]["train_loss"]),
        "final_val_loss": float(rows[-1]["val_loss"]) if rows[-1]["val_loss"] else None,
        "parameters": params,
    }


def allreduce_worker(numel: int, repeats: int) -> None:
    """Inside torchrun: time ``repeats`` gloo all-reduces of ``numel`` float32 values."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    grad = torch.ones(numel)
    times = []
    for _ in range(repeats + 10):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(grad)
        times.append(time.perf_counter() - t0)
    if dist.get_rank() == 0:
        print(f"ALLREDUCE_US {statistics.median(times[10:]) * 1e6:.1f}", flush=True)
    dist.destroy_process_group()


def time_allreduce(numel: int, repeats: int = 200) -> float:
    """Median microseconds of one all-reduce of ``numel`` floats between 2 local ranks."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd += [__file__, "--allreduce-worker", str(numel), "--repeats", str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("ALLREDUCE_US"):
            return float(line.split()[1])
    raise SystemExit(f"all-reduce timing failed:\n{done.stderr}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 epochs, batch 64 only")
    p.add_argument("--allreduce-worker", type=int, metavar="NUMEL", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=200, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.allreduce_worker:
        allreduce_worker(args.allreduce_worker, args.repeats)
        return
    epochs, batches = (2, [64]) if args.quick else (5, [64, 256])
    machine = machine_info()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in batches:
            for i, (name, flags) in enumerate(SETTINGS.items()):
                res = run_setting(flags, batch, epochs, Path(tmp) / f"b{batch}_{i}")
                res.update(setting=name, batch_size=batch)
                results.append(res)
                print(f"batch {batch:4d}  {name:28s} {res['windows_per_s']:9.0f} windows/s")
    base = {
        r["batch_size"]: r["windows_per_s"]
        for r in results
        if r["setting"] == "1 process, 1 thread"
    }
    rows = []
    for r in results:
        speedup = r["windows_per_s"] / base[r["batch_size"]]
        r["speedup_vs_1x1"] = round(speedup, 2)
        rows.append(
            [
                r["batch_size"],
                r["setting"],
                f"{r['windows_per_s']:,.0f}",
                f"{r['epoch_s']:.2f}",
                f"{speedup:.2f}x",
                f"{r['wall_s']:.1f}",
                f"{r['final_val_loss']:.5f}" if r["final_val_loss"] is not None else "-",
            ]
        )
    params = results[0]["parameters"]
    small_us, grad_us = time_allreduce(2), time_allreduce(params)
    print(f"all-reduce: 2 floats {small_us:.0f} us, {params} floats {grad_us:.0f} us")
    header = ["global batch", "setting", "windows/s", "epoch s", "speed-up", "wall s", "val loss"]
    table = md_table(header, rows)
    table += (
        f"\nlstm, hidden 64, {params:,} parameters: each step all-reduces {params:,} float32 "
        f"gradients ({params * 4 / 1024:.0f} KiB) plus 2 float64 loss statistics. "
        f"Epochs: {epochs} (throughput: median of epochs 2..{epochs}).\n\n"
        f"One gloo all-reduce between 2 local processes (median of 200): {grad_us:.0f} us "
        f"for the {params:,} gradients, {small_us:.0f} us for 2 numbers.\n"
    )
    report = {
        "machine": machine,
        "data": "builtin:many_series (100 series x 240 months)",
        "epochs": epochs,
        "results": results,
        "allreduce_us": {"2": small_us, str(params): grad_us},
    }
    print(write_results("distributed", report, table))


if __name__ == "__main__":
    main()
