"""W2 on a GPU: forward + backward throughput of the recurrent cells on CUDA (cuDNN).

The same models, batch and loss as ``bench_throughput.py`` (it supplies them), moved to the
GPU, in float32 and under bfloat16 autocast. Every timed call ends with
``torch.cuda.synchronize()``, so the time is the GPU's, not the launch queue's. On CUDA
``elman.models.GRU`` runs ``nn.GRU`` (cuDNN) and ``elman.models.Elman`` runs its fused
recurrence with CUDA kernels, one small matrix product per step.

``--device cpu`` runs the same code on the CPU (a smoke test of the script on a machine
without a GPU; the numbers are then the CPU's). ``benchmarks/gpu_bench.sh`` runs this and the
latency benchmark (W4) with ``--device cuda``.
Results: ``benchmarks/results/gpu_throughput.{json,md}``.

Usage::

    python benchmarks/gpu_bench.py                 # H = 64, 256, 1024 on CUDA
    python benchmarks/gpu_bench.py --quick         # H = 64, fewer repeats
    python benchmarks/gpu_bench.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch
from bench_throughput import FLOP_FACTOR, variants  # type: ignore[import-not-found]
from common import (  # type: ignore[import-not-found]
    machine_info,
    md_table,
    timings,
    write_results,
)
from torch import nn

from elman.errors import ElmanError
from elman.runtime import choose_device
from elman.training.precision import bf16_supported


def step_fn(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, precision: str
) -> Callable[[], None]:
    """One synchronised forward + backward, under autocast for ``bf16``."""
    dev = x.device

    def ctx() -> contextlib.AbstractContextManager:
        if precision == "bf16":
            return torch.autocast(dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with ctx():
            loss = nn.functional.mse_loss(model(x).float(), target)
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return step


def time_calls(fns: dict[Any, Callable[[], None]], rounds: int, calls: int) -> dict[Any, float]:
    """Best over ``rounds`` of the median seconds of ``calls`` calls; functions take turns."""
    for fn in fns.values():
        timings(fn, 0, warmup=2)  # allocator caches, cuDNN plans, lazy initialisation
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for key, fn in fns.items():
            best[key] = min(best[key], statistics.median(timings(fn, calls, warmup=0)))
    return best


def bench(cell: str, hidden: int, args: argparse.Namespace, dev: torch.device) -> list[dict]:
    """Every variant of one cell at one hidden size, in each precision."""
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.steps, 1, device=dev)
    target = torch.randn(args.batch, args.steps, 1, device=dev)
    models = {k: m.to(dev) for k, m in variants(cell, 1, hidden).items()}
    if args.skip_cell_loop:
        models.pop("cell loop")
    fns = {
        (name, prec): step_fn(m, x, target, prec)
        for name, m in models.items()
        for prec in args.precisions
    }
    seconds = time_calls(fns, args.rounds, args.calls)
    flops = FLOP_FACTOR[cell] * hidden * (1 + hidden) * args.batch * args.steps
    base = seconds.get(("torch", "fp32"))
    return [
        {
            "cell": cell,
            "hidden_size": hidden,
            "variant": name,
            "precision": prec,
            "seconds_per_batch": sec,
            "sample_steps_per_s": args.batch * args.steps / sec,
            "gflop_per_s": flops / sec / 1e9,
            "speedup_vs_torch_fp32": base / sec if base else None,
        }  # fmt: skip
        for (name, prec), sec in seconds.items()
    ]


def table(report: dict[str, Any]) -> str:
    s = report["settings"]
    rows = [
        [r["cell"], r["hidden_size"], r["variant"], r["precision"],
         f"{1e3 * r['seconds_per_batch']:.2f}", f"{r['sample_steps_per_s']:,.0f}",
         f"{r['gflop_per_s']:.1f}",
         f"{r['speedup_vs_torch_fp32']:.2f}x" if r["speedup_vs_torch_fp32"] else "-"]
        for r in report["results"]
    ]  # fmt: skip
    return (
        f"Device {report['device']}. Batch {s['batch']}, {s['steps']} steps, input size 1, "
        f"forward + backward with a synchronisation per call; best of {s['rounds']} rounds of "
        f"the median of {s['calls']} calls. Load {report['load_before_after']} (1-minute "
        "average before, after).\n\n"
        + md_table(
            [
                "cell",
                "H",
                "variant",
                "precision",
                "ms / batch",
                "sample-steps/s",
                "GFLOP/s",
                "vs torch fp32",
            ],
            rows,
        )  # fmt: skip
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="H = 64 only, fewer repeats")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--hidden", type=int, nargs="+", help="hidden sizes (64 256 1024)")
    p.add_argument("--cells", nargs="+", default=["elman", "lstm", "gru"], choices=FLOP_FACTOR)
    p.add_argument("--skip-cell-loop", action="store_true", help="leave out nn.*Cell loops")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    try:
        dev = choose_device(args.device)
    except ElmanError as exc:  # no CUDA GPU: one line, exit code 2
        print(f"gpu_bench: {exc}", file=sys.stderr)
        return 2
    args.rounds, args.calls = (2, 3) if args.quick else (args.rounds, 10)
    args.hidden = args.hidden or ([64] if args.quick else [64, 256, 1024])
    args.precisions = ["fp32", "bf16"] if bf16_supported(dev) else ["fp32"]
    load0 = machine_info()["load_1min"]
    results = []
    for cell in args.cells:
        for hidden in args.hidden:
            results += bench(cell, hidden, args, dev)
            print(f"{cell} H={hidden} done")
    keys = ("batch", "steps", "hidden", "cells", "rounds", "calls", "precisions", "quick")
    report = {
        "benchmark": "gpu_throughput",
        "machine": machine_info(),
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
        "load_before_after": [load0, machine_info()["load_1min"]],
        "settings": {k: getattr(args, k) for k in keys},
        "results": results,
    }
    name = "gpu_throughput" if dev.type == "cuda" else "gpu_throughput_cpu_smoke"
    write_results(name + ("_quick" if args.quick else ""), report, table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
