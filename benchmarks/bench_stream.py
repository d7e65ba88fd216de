"""Streaming throughput in points per second: LSTM H=32, truncated BPTT k=16, u=1 and u=16.

Three ways of running the same predict-then-learn loop over a drifting sine:

* ``learner, compiled cell``: :class:`elman.online.learner.OnlineLearner` on its fast path (the
  LSTM step and its truncated BPTT hand-written and compiled with numba, see
  :mod:`elman.online.jit`);
* ``learner, numpy cell``: the same hand-written cell in NumPy, the fallback taken without
  numba or with ``ELMAN_NO_JIT=1`` (see :mod:`elman.online.cells`);
* ``learner, torch path``: the same learner with ``fast=False`` (``nn.LSTM`` per point,
  autograd over the chunk), the generic path every other model takes;
* ``elman stream (in-process)``: :func:`elman.online.stream.run_stream` from a file of numbers to
  a CSV file, with parsing, output rows and a checkpoint every 1000 points (the interpreter
  start is not included).

Each is timed ``--repeats`` times over ``--points`` points after a warm-up; the table shows
the best and the median wall-clock rate, and the rate by process CPU time, which a busy
machine disturbs less. Goals (2-core CPU): >= 20,000 points/s with u=16 and >= 5,000
with u=1. Results: ``benchmarks/results/stream.{json,md}``.

Usage::

    python benchmarks/bench_stream.py            # 20,000 points, 3 repeats
    python benchmarks/bench_stream.py --quick    # 3,000 points, 1 repeat
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

from elman.config import OnlineConfig
from elman.data.scaling import Scaler
from elman.data.synthetic import drifting_sine
from elman.models import build_model
from elman.online.learner import OnlineLearner
from elman.online.stream import ModelSpec, StreamOptions, run_stream

GOALS = {1: 5_000, 16: 20_000}  # points/s on a 2-core CPU, by update interval u


def _learner(u: int, fast: bool, hidden: int, k: int, jit: bool = True) -> OnlineLearner:
    torch.manual_seed(0)
    os.environ["ELMAN_NO_JIT"] = "0" if jit else "1"  # read when the fast cell is built
    cfg = OnlineConfig(tbptt=k, update_every=u, lr=3e-3)
    scaler = Scaler().fit(drifting_sine(200))
    return OnlineLearner(build_model("lstm", 1, 1, hidden), scaler, config=cfg, fast=fast)


def time_learner(
    values: np.ndarray, u: int, fast: bool, args: argparse.Namespace, jit: bool = True
) -> dict:
    """Seconds (wall and CPU) of ``observe`` over ``values`` per repeat, after a warm-up."""
    return time_observe(
        lambda: _learner(u, fast, args.hidden, args.tbptt, jit), values[:500], values,
        args.repeats,
    )  # fmt: skip


def time_observe(
    make: Callable[[], OnlineLearner], warm: np.ndarray, values: np.ndarray, repeats: int
) -> dict:
    """Seconds (wall and CPU) of ``observe`` over ``values`` by a fresh learner from
    ``make`` that first observed ``warm``, per repeat."""
    walls, cpus = [], []
    for _ in range(repeats):
        learner = make()
        learner.observe(warm)
        w0, c0 = time.perf_counter(), time.process_time()
        learner.observe(values)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"wall": walls, "cpu": cpus}


def time_stream(values: np.ndarray, u: int, args: argparse.Namespace) -> dict:
    """Seconds of :func:`run_stream` from a file of numbers to a CSV file, per repeat."""
    os.environ["ELMAN_NO_JIT"] = "0"  # the default: compiled kernels where available
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in.txt"
        inp.write_text("".join(f"{float(v)!r}\n" for v in values))
        for rep in range(args.repeats):
            spec = ModelSpec(model_type="lstm", hidden_size=args.hidden)
            online = OnlineConfig(tbptt=args.tbptt, update_every=u, lr=3e-3)
            opts = StreamOptions(input=str(inp), output=str(Path(tmp) / f"out{rep}.csv"),
                                 checkpoint_every=1000)  # fmt: skip
            w0, c0 = time.perf_counter(), time.process_time()
            run_stream(spec, online, opts, handle_signals=False)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return {"wall": walls, "cpu": cpus}


def summarise(path: str, u: int, n: int, t: dict[str, list[float]]) -> dict[str, Any]:
    """Rates from the timings of one configuration."""
    best, median = min(t["wall"]), statistics.median(t["wall"])
    return {
        "path": path,
        "update_every": u,
        "points": n,
        "points_per_s_best": n / best,
        "points_per_s_median": n / median,
        "points_per_s_cpu": n / min(t["cpu"]),
        "us_per_point_best": 1e6 * best / n,
        "goal_points_per_s": GOALS.get(u),
        "wall_seconds": t["wall"],
        "cpu_seconds": t["cpu"],
    }


def window_learner(fast: bool, lookback: int = 36, horizon: int = 6) -> OnlineLearner:
    """elman's default model on windows: LSTM H=64 with a highway, direct, ``norm="last"``."""
    torch.manual_seed(0)
    model = build_model("lstm", 1, horizon, 64, highway=lookback, highway_inputs=1)
    scaler = Scaler().fit(drifting_sine(200))
    return OnlineLearner(model, scaler, horizon=horizon, strategy="direct", norm="last",
                         lookback=lookback, config=OnlineConfig(lr=1e-3), fast=fast)  # fmt: skip


def windowed(args: argparse.Namespace) -> int:
    """``--windowed``: the compiled window kernel against the torch window path, u=1."""
    torch.set_num_threads(1)
    machine = machine_info()
    values = drifting_sine(args.points + 500, noise=0.02)[500:]
    rows = []
    for path, fast, n in (("learner, compiled window kernel", True, len(values)),
                          ("learner, torch window path", False, max(len(values) // 5, 500))):
        timed = time_observe(lambda f=fast: window_learner(f), values[:300], values[:n],
                             args.repeats)  # fmt: skip
        rows.append(summarise(path, 1, n, timed))
    table = md_table(
        ["path", "points/s (best)", "points/s (median)", "points/s (CPU time)", "µs/point"],
        [[r["path"], f"{r['points_per_s_best']:,.0f}", f"{r['points_per_s_median']:,.0f}",
          f"{r['points_per_s_cpu']:,.0f}", f"{r['us_per_point_best']:.1f}"] for r in rows],
    )  # fmt: skip
    note = (
        "LSTM H=64 with a highway, lookback 36, direct horizon 6, norm 'last' (a window per "
        "point, forward and back), Adam, u=1, 1 torch thread; load average "
        f"{machine['load_1min']} at start.\n\n"
    )
    path = write_results("stream_window", {"benchmark": "stream_window", "machine": machine,
                                           "results": rows}, note + table)  # fmt: skip
    print(note + table)
    print(f"wrote {path}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Streaming throughput (points per second).")
    p.add_argument("--quick", action="store_true", help="3,000 points, one repeat")
    p.add_argument("--points", type=int, default=20_000, help="points per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration")
    p.add_argument("--hidden", type=int, default=32, help="LSTM hidden size (default 32)")
    p.add_argument("--tbptt", type=int, default=16, help="truncated BPTT length k (default 16)")
    p.add_argument("--no-torch-path", action="store_true", help="skip the slow generic path")
    p.add_argument("--windowed", action="store_true",
                   help="instead: the default model on windows (norm 'last'), compiled and torch")
    args = p.parse_args(argv)
    if args.quick:
        args.points, args.repeats = 3_000, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.windowed:
        return windowed(args)
    torch.set_num_threads(1)  # one point at a time: more threads only add synchronisation
    machine = machine_info()
    values = drifting_sine(args.points + 500, noise=0.02)[500:]
    rows = []
    for u in (1, 16):
        rows.append(summarise("learner, compiled cell", u, len(values),
                              time_learner(values, u, True, args)))  # fmt: skip
        rows.append(summarise("learner, numpy cell", u, len(values),
                              time_learner(values, u, True, args, jit=False)))  # fmt: skip
        if not args.no_torch_path:
            short = values[: max(len(values) // 10, 500)]
            rows.append(summarise("learner, torch path", u, len(short),
                                  time_learner(short, u, False, args)))  # fmt: skip
        rows.append(summarise("elman stream (in-process)", u, len(values),
                              time_stream(values, u, args)))  # fmt: skip
    report = {
        "benchmark": "stream",
        "machine": machine,
        "load_1min_end": machine_info()["load_1min"],
        "settings": {"model": "lstm", "hidden_size": args.hidden, "tbptt": args.tbptt,
                     "points": len(values), "repeats": args.repeats, "optimizer": "adam"},
        "results": rows,
    }  # fmt: skip
    table = md_table(
        ["path", "u", "points/s (best)", "points/s (median)", "points/s (CPU time)",
         "µs/point", "goal"],
        [[r["path"], r["update_every"], f"{r['points_per_s_best']:,.0f}",
          f"{r['points_per_s_median']:,.0f}", f"{r['points_per_s_cpu']:,.0f}",
          f"{r['us_per_point_best']:.1f}", f">= {r['goal_points_per_s']:,}"] for r in rows],
    )  # fmt: skip
    note = (
        f"LSTM H={args.hidden}, k={args.tbptt}, Adam, {len(values):,} points of a drifting "
        f"sine, 1 torch thread; load average {machine['load_1min']} at start, "
        f"{report['load_1min_end']} at end (timings on a busy machine are low).\n\n"
    )
    path = write_results("stream", report, note + table)
    print(note + table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
