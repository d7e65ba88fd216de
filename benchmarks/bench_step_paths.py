"""What each fast path inside the compiled step loops buys, switched on and off in one run.

Times one training step (forward + backward, as in ``bench_throughput.py``) of elman's
Elman, GRU and LSTM networks on their fused path with the compiled step loops, with each
of these switched off in turn, and with all of them off:

* ``packed``: the per-step products read the recurrent weights from MKL's packed copy,
  made once per block (``ELMAN_NO_PACKED_GEMM=1`` turns it off; then ``at::mm``);
* ``fold``: a layer with few inputs computes its input projection inside the recurrence
  (``FOLD_MAX_INPUTS``; off: ``F.linear`` over the whole sequence first);
* ``weight grad in loop``: the backward loop adds each step's weight-gradient product into
  a per-block sum (``WEIGHT_GRAD_IN_LOOP``; off: one product over the sequence afterwards).
  It applies only to recurrent weights of at most ``WEIGHT_GRAD_IN_LOOP_MAX_BYTES``.

The variants take turns round by round in one process, so the machine's drifting speed
hits them alike. Results go to ``benchmarks/results/step_paths.{json,md}``.

``--fold-sweep`` instead checks the ``FOLD_MAX_INPUTS`` limit: for each cell, hidden size and
input width I in ``--inputs``, the step with the input projection folded into the loop
(forced, whatever I) against projected over the whole sequence first, the other switches
on, the LSTM on its fused path at every size. Results: ``benchmarks/results/fold_sweep.{json,md}``.

Usage::

    python benchmarks/bench_step_paths.py            # H = 64 and 256, 5 rounds
    python benchmarks/bench_step_paths.py --quick    # H = 64, 2 rounds
    python benchmarks/bench_step_paths.py --fold-sweep --inputs 1 4 8 16 32
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_throughput import (  # type: ignore[import-not-found]
    CLOCKS,
    FLOP_FACTOR,
    sgemm_peak,
    time_calls,
    train_step,
)
from common import machine_info, write_results  # type: ignore[import-not-found]

from elman.models import GRU, LSTM, Elman, native, switches
from elman.training.memory import keep_freed_memory

RESULTS = Path(__file__).resolve().parent / "results"
SWITCHES = ("packed", "fold", "weight grad in loop")


class ElmanOutputs(torch.nn.Module):
    """An ``elman.models`` network returning only its outputs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


FOLD_DEFAULT = switches.FOLD_MAX_INPUTS


def set_switches(on: set[str], fold_limit: int = FOLD_DEFAULT) -> None:
    """Turn the fast paths in ``on`` on and the others off; fold up to ``fold_limit`` inputs."""
    os.environ[switches.ENV_NO_PACKED_GEMM] = "" if "packed" in on else "1"
    switches.FOLD_MAX_INPUTS = fold_limit if "fold" in on else 0
    switches.WEIGHT_GRAD_IN_LOOP = "weight grad in loop" in on


def variants(cell: str) -> dict[str, set[str]]:
    """The switch settings compared for one cell."""
    switches = list(SWITCHES)
    found = {"all on": set(switches)}
    for s in switches:
        found[f"without {s}"] = set(switches) - {s}
    found["all off"] = set()
    return found


def time_settings(
    cell: str,
    hidden: int,
    inputs: int,
    settings: dict[str, set[str]],
    fold_limit: int,
    args: argparse.Namespace,
    peak: float,
) -> list[dict]:
    """Time one training step of ``cell`` under each switch setting (variants in turn)."""
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.steps, inputs)
    target = torch.randn(args.batch, args.steps, 1)
    make = {"elman": lambda: Elman(inputs, hidden, 1), "gru": lambda: GRU(inputs, 1, hidden),
            "lstm": lambda: LSTM(inputs, 1, hidden)}[cell]  # fmt: skip
    step = train_step(ElmanOutputs(make()), x, target)

    def with_switches(on: set[str]) -> Callable[[], None]:
        def run() -> None:
            set_switches(on, fold_limit)
            step()

        return run

    fns = {name: with_switches(on) for name, on in settings.items()}
    seconds = time_calls(fns, args.rounds, args.calls, CLOCKS["wall"])
    set_switches(set(SWITCHES))
    flops = FLOP_FACTOR[cell] * hidden * (inputs + hidden) * args.batch * args.steps
    base = seconds[next(iter(settings))]
    return [
        {"cell": cell, "hidden_size": hidden, "inputs": inputs, "variant": name,
         "seconds_per_batch": sec, "fraction_of_sgemm_peak": flops / sec / 1e9 / peak,
         "time_vs_first": sec / base}
        for name, sec in seconds.items()
    ]  # fmt: skip


def bench_cell(cell: str, hidden: int, args: argparse.Namespace, peak: float) -> list[dict]:
    return time_settings(cell, hidden, 1, variants(cell), FOLD_DEFAULT, args, peak)


def fold_sweep(cell: str, hidden: int, args: argparse.Namespace, peak: float) -> list[dict]:
    """Folded against unfolded input projection at each input width, folding forced on."""
    settings = {"folded": set(SWITCHES), "projected first": set(SWITCHES) - {"fold"}}
    big = max(args.inputs)
    return [r for i in args.inputs
            for r in time_settings(cell, hidden, i, settings, big, args, peak)]  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    sweep = report["benchmark"] == "fold_sweep"
    first = "folded" if sweep else "all on"
    lines = [
        f"Batch {s['batch']}, {s['steps']} steps, float32, "
        f"forward + backward, compiled step loops: {report['compiled_step_loops']}. sgemm peak "
        f"(2048^3 `torch.mm`): {report['sgemm_gflop_per_s']:.1f} GFLOP/s. Best of "
        f"{s['rounds']} rounds of the median of {s['calls']} calls, variants in turn.",
        "",
        f"| cell | H | I | variant | ms / batch | % of sgemm peak | time vs {first} |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['cell']} | {r['hidden_size']} | {r['inputs']} | {r['variant']} "
            f"| {1e3 * r['seconds_per_batch']:.1f} | {100 * r['fraction_of_sgemm_peak']:.1f} "
            f"| {r['time_vs_first']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="hidden 64 only, 2 rounds")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--hidden", type=int, nargs="+", help="hidden sizes (default 64 256)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--fold-sweep",
        action="store_true",
        help="folded against unfolded input projection at each of --inputs",
    )
    p.add_argument(
        "--inputs",
        type=int,
        nargs="+",
        default=[1, 4, 8, 16, 32],
        help="input widths for --fold-sweep (default 1 4 8 16 32)",
    )
    args = p.parse_args(argv)
    args.rounds, args.calls = (2, 3) if args.quick else (args.rounds, 5)
    args.hidden = args.hidden or ([64] if args.quick else [64, 256])
    if args.threads:
        torch.set_num_threads(args.threads)
    if native.ops() is None:
        sys.stderr.write(f"compiled step loops unavailable: {native.status()}\n")
        return 1
    keep_freed_memory()
    peak = sgemm_peak(2048, 0.5 if args.quick else 3.0, CLOCKS["wall"])
    name, bench = ("fold_sweep", fold_sweep) if args.fold_sweep else ("step_paths", bench_cell)
    if args.fold_sweep:
        # The LSTM on its fused path at every size: at H = 64 and batch 64 it would otherwise
        # run nn.LSTM, which the fold switch does not touch.
        switches.FUSED_LSTM_MIN_WORK = 0
    results = [r for cell in ("elman", "gru", "lstm") for h in args.hidden
               for r in bench(cell, h, args, peak)]  # fmt: skip
    keys = ["batch", "steps", "hidden", "rounds", "calls"] + (["inputs"] if args.fold_sweep else [])
    report = {
        "benchmark": name,
        "machine": machine_info(),
        "settings": {k: getattr(args, k) for k in keys},
        "compiled_step_loops": native.status(),
        "sgemm_gflop_per_s": peak,
        "results": results,
    }
    table = markdown(report)
    write_results(name + ("_quick" if args.quick else ""), report, table, args.out)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
