"""Training throughput of the recurrent cells: forward + backward, no optimizer step.

For each cell (elman, lstm, gru) and hidden size, time one ``loss.backward()`` over a batch
of sequences for each way of running it:

* ``cell loop``: ``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell`` called step by step in
  Python, the textbook implementation;
* ``torch``: ``nn.RNN`` (tanh) / ``nn.LSTM`` / ``nn.GRU``;
* ``autograd loop``: ``elman.models.Elman(fused=False)`` (batched input projection, then a
  step loop recorded by autograd), elman only;
* ``fused``: ``elman.models.Elman`` / ``GRU`` / ``LSTM`` on their default path: the fused
  recurrence, with the compiled step loops of ``elman.models.native`` when they are
  available (the header says). Without them the Elman and GRU loops run in Python (a GRU
  hands batch x hidden above ``FUSED_GRU_MAX_WORK`` to ``nn.GRU``) and the LSTM is
  ``nn.LSTM``. ``ELMAN_NO_NATIVE=1`` measures that case.

As elman's training does, the run first lets glibc keep freed buffers for reuse
(``elman.training.memory.keep_freed_memory``); this applies to every variant.

Every variant ends in the same linear head and mean-squared loss. Throughput is reported
as sample-steps per second and as achieved GFLOP/s under a simple FLOP model (matrix
products only, forward + backward, per sample and step)::

    Elman 6 H (I + H)     GRU 18 H (I + H)     LSTM 24 H (I + H)

and as a fraction of the float32 GEMM rate measured in the same run (``torch.mm`` of two
2048 x 2048 matrices). Results go to ``benchmarks/results/throughput.{json,md}``.

Usage::

    python benchmarks/bench_throughput.py            # full run
    python benchmarks/bench_throughput.py --quick    # a few seconds, fewer repeats
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from common import machine_info  # type: ignore[import-not-found]
from torch import Tensor, nn

from elman.models import GRU, LSTM, Elman
from elman.models.native import status as native_status
from elman.training.memory import keep_freed_memory

RESULTS = Path(__file__).resolve().parent / "results"
FLOP_FACTOR = {"elman": 6, "gru": 18, "lstm": 24}  # x H (I + H) per sample-step, fwd + bwd
CELL_CLASSES: dict[str, type[nn.Module]] = {
    "elman": nn.RNNCell,
    "gru": nn.GRUCell,
    "lstm": nn.LSTMCell,
}
SEQ_CLASSES: dict[str, type[nn.Module]] = {"elman": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class CellLoop(nn.Module):
    """A ``nn.*Cell`` applied step by step, then a linear head: ``[B, L, I] -> [B, L, 1]``."""

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.cell = CELL_CLASSES[cell](input_size, hidden_size)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        state: Any = None
        outs = []
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
            outs.append(state[0] if isinstance(state, tuple) else state)
        return self.head(torch.stack(outs, 1))  # [B, L, 1]


class TorchSeq(nn.Module):
    """``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (batch-first) and a linear head."""

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.rnn = SEQ_CLASSES[cell](input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[0])  # [B, L, 1]


class ElmanModel(nn.Module):
    """An ``elman.models`` network returning only its outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)[0]  # [B, L, 1]


def variants(cell: str, input_size: int, hidden: int) -> dict[str, nn.Module]:
    """The implementations compared for one cell."""
    found: dict[str, nn.Module] = {
        "cell loop": CellLoop(cell, input_size, hidden),
        "torch": TorchSeq(cell, input_size, hidden),
    }
    if cell == "elman":
        found["autograd loop"] = ElmanModel(Elman(input_size, hidden, 1, fused=False))
        found["fused"] = ElmanModel(Elman(input_size, hidden, 1, fused=True))
    if cell == "gru":
        found["fused"] = ElmanModel(GRU(input_size, 1, hidden, fused=True))
    if cell == "lstm":
        found["fused"] = ElmanModel(LSTM(input_size, 1, hidden, fused=True))
    return found


# Wall time by default; "cpu" counts only the time this process ran, which keeps
# single-threaded numbers honest on a machine that other jobs share.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def time_calls(
    fns: dict[str, Callable[[], Any]], rounds: int, calls: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Seconds per call of each function: the best over ``rounds`` of the median of ``calls``.

    The functions take turns round by round, so a burst of load from other processes hits
    all of them alike, and the best round discards such bursts. Each round starts with the
    next function, so none always runs first (which measured up to 10% slower here).
    """
    for fn in fns.values():
        fn()
        fn()  # warm-up: allocator caches, thread pool, lazy initialisation
    best = dict.fromkeys(fns, float("inf"))
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            times = []
            for _ in range(calls):
                t0 = clock()
                fn()
                times.append(clock() - t0)
            best[name] = min(best[name], statistics.median(times))
    return best


def sgemm_peak(n: int, min_seconds: float, clock: Callable[[], float]) -> float:
    """Achieved float32 GEMM rate in GFLOP/s: ``torch.mm`` of two ``n x n`` matrices (best)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = float("inf")
    start = clock()
    while clock() - start < min_seconds:
        t0 = clock()
        torch.mm(a, b, out=out)
        best = min(best, clock() - t0)
    return 2.0 * n**3 / best / 1e9


def train_step(model: nn.Module, x: Tensor, target: Tensor) -> Callable[[], None]:
    """One forward + backward over the batch (gradients reset each time)."""

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), target)
        loss.backward()

    return step


def bench_cell(cell: str, hidden: int, args: argparse.Namespace, peak: float) -> list[dict]:
    """Time every variant of one cell at one hidden size."""
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.steps, args.input_size)
    target = torch.randn(args.batch, args.steps, 1)
    flops = FLOP_FACTOR[cell] * hidden * (args.input_size + hidden) * args.batch * args.steps
    models = variants(cell, args.input_size, hidden)
    fns = {name: train_step(model, x, target) for name, model in models.items()}
    seconds = time_calls(fns, args.rounds, args.calls, CLOCKS[args.clock])
    rows = []
    for name, sec in seconds.items():
        gflops = flops / sec / 1e9
        rows.append({
            "cell": cell, "hidden_size": hidden, "variant": name, "seconds_per_batch": sec,
            "sample_steps_per_s": args.batch * args.steps / sec,
            "gflop_per_s": gflops, "fraction_of_sgemm_peak": gflops / peak,
        })  # fmt: skip
    base = next(r["seconds_per_batch"] for r in rows if r["variant"] == "torch")
    for r in rows:
        r["speedup_vs_torch"] = base / r["seconds_per_batch"]
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table with a short header."""
    m, s, load = report["machine"], report["settings"], report["load_average_before_after"]
    lines = [
        f"CPU: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads. "
        f"Batch {s['batch']}, {s['steps']} steps, input size {s['input_size']}, "
        f"float32, forward + backward. sgemm peak (2048^3 `torch.mm`): "
        f"{report['sgemm_gflop_per_s']:.1f} GFLOP/s. Time per batch ({s['clock']} clock): "
        f"best of {s['rounds']} rounds of the median of {s['calls']} calls. "
        f"1-minute load average before / after: {load[0]:.2f} / {load[1]:.2f}. "
        f"Compiled step loops: {report['compiled_step_loops']}; glibc keeps freed buffers: "
        f"{'yes' if report['malloc_keeps_freed_memory'] else 'no'}.",
        "",
        "| cell | H | variant | ms / batch | sample-steps/s | GFLOP/s | % of sgemm peak "
        "| vs torch |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['cell']} | {r['hidden_size']} | {r['variant']} "
            f"| {1e3 * r['seconds_per_batch']:.1f} | {r['sample_steps_per_s']:,.0f} "
            f"| {r['gflop_per_s']:.2f} | {100 * r['fraction_of_sgemm_peak']:.1f} "
            f"| {r['speedup_vs_torch']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Training throughput of the recurrent cells.")
    p.add_argument("--quick", action="store_true", help="short run: hidden 64 only, few repeats")
    p.add_argument("--batch", type=int, default=64, help="sequences per batch (default 64)")
    p.add_argument("--steps", type=int, default=100, help="time steps per sequence (default 100)")
    p.add_argument("--input-size", type=int, default=1, help="features per step (default 1)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden sizes (default 64 256)")
    p.add_argument("--cells", nargs="+", default=["elman", "lstm", "gru"], choices=FLOP_FACTOR)
    p.add_argument("--rounds", type=int, default=5, help="timing rounds, best kept (default 5)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall",
        help="wall time, or process CPU time (use with --threads 1 on a shared machine)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = p.parse_args(argv)
    args.rounds, args.calls = (2, 3) if args.quick else (args.rounds, 5)
    if args.hidden is None:
        args.hidden = [64] if args.quick else [64, 256]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc_tuned = keep_freed_memory()  # as elman's training does
    load_before = os.getloadavg()[0]
    peak = sgemm_peak(2048, 0.5 if args.quick else 3.0, CLOCKS[args.clock])
    results = []
    for cell in args.cells:
        for hidden in args.hidden:
            results += bench_cell(cell, hidden, args, peak)
    report = {
        "benchmark": "throughput",
        "machine": machine_info(),
        # Other processes on the machine skew timings; the 1-minute load average shows it.
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "settings": {
            k: getattr(args, k)
            for k in ("batch", "steps", "input_size", "hidden", "rounds", "calls", "clock", "quick")
        },
        "flop_model": {k: f"{v} * H * (I + H) per sample-step" for k, v in FLOP_FACTOR.items()},
        "compiled_step_loops": native_status(),
        "malloc_keeps_freed_memory": malloc_tuned,
        "sgemm_gflop_per_s": peak,
        "results": results,
    }
    write_atomic(args.out / "throughput.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_atomic(args.out / "throughput.md", table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
