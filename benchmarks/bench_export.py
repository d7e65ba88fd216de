"""Forecast latency of an exported model: onnxruntime against elman in-process.

One series, horizon 24, the default LSTM (hidden size 64, lookback chosen by elman), for
both strategies. For each, the p50 and p99 latency of one forecast (batch 1) through:

* ``onnxruntime``: ``session.run`` on the sequence graph (real units in and out, scaler
  and normalisation inside the graph);
* ``onnxruntime step``: one call of the step graph (the per-observation cost of streaming);
* ``elman``: ``Forecaster.forecast_arrays`` (scaling, window preparation, model, inverse
  scaling, in PyTorch);
* ``torch model``: the bare network call on a prepared window (``forecast_batch``), the
  floor for PyTorch without elman's data handling.

Weights come from a short fit; they do not change the cost. Every runtime uses one
thread (``torch.set_num_threads(1)``, onnxruntime ``intra_op_num_threads=1``). Results go to
``benchmarks/results/export.{json,md}``. Goal: onnxruntime p50 <= 0.2 ms (direct LSTM).

Usage::

    python benchmarks/bench_export.py            # 3000 timed calls per row
    python benchmarks/bench_export.py --quick    # 300 timed calls per row
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from common import machine_info  # type: ignore[import-not-found]

from elman._version import __version__
from elman.data.prepare import scaled_tensor
from elman.data.synthetic import noisy_sine
from elman.data.windows import features
from elman.export.onnx import context_inputs, step_graph
from elman.forecaster import Forecaster
from elman.forecasting.strategies import forecast_batch

RESULTS = Path(__file__).resolve().parent / "results"
HORIZON = 24
GOAL_MS = 0.2


def percentiles(fn: Callable[[], Any], calls: int, warmup: int) -> dict[str, float]:
    """p50 / p99 / mean of single calls in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    arr = np.asarray(times) * 1e3
    return {
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "mean_ms": float(statistics.fmean(arr)),
    }


def session(path: Path) -> ort.InferenceSession:
    """A single-threaded CPU session."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bench_strategy(strategy: str, folder: Path, calls: int) -> list[dict[str, Any]]:
    """Fit briefly, export, and time the four ways of forecasting."""
    f = Forecaster("lstm", horizon=HORIZON, strategy=strategy, epochs=1, max_batches=4,
                   progress=False, threads=1, ensemble="none")  # fmt: skip
    f.fit(noisy_sine(n=600))
    path = folder / f"{strategy}.onnx"
    seq_path, step_path = f.export_onnx(path, overwrite=True)
    p = f.predictor
    model, sizes, layout = p.model, p.sizes, p.layout
    feeds = context_inputs(f, HORIZON)
    seq = session(seq_path)
    step = session(step_path)
    graph, _ = step_graph(f)
    step_feeds = {"x": np.zeros((1, 1, layout.input_size), np.float32)}
    for inp, zero in zip(step.get_inputs()[1:], graph.init_state(1), strict=True):
        step_feeds[inp.name] = zero.numpy()
    tail = f.series[0].tail(sizes.lookback)
    x = features(scaled_tensor(tail, f.scaler_for(tail)), layout)[None]  # [1, L, C_in]
    x = x - x[:, -1:]  # norm "last" (one target column)
    torch.set_num_threads(1)

    @torch.no_grad()
    def torch_model() -> None:
        forecast_batch(model, x, None, strategy, sizes.lookback, HORIZON, layout)

    timed = {
        "onnxruntime": lambda: seq.run(["y"], feeds),
        "onnxruntime step": lambda: step.run(None, step_feeds),
        "elman": lambda: f.forecast_arrays(f.series, HORIZON),
        "torch model": torch_model,
    }
    rows = []
    for name, fn in timed.items():
        stats = percentiles(fn, calls, warmup=max(20, calls // 20))
        rows.append({"strategy": strategy, "runtime": name, "lookback": sizes.lookback, **stats})
    return rows


def export_machine_info() -> dict[str, Any]:
    """The shared machine description plus the runtimes' versions and the load average."""
    return {
        **machine_info(),
        "onnxruntime": ort.__version__,
        "elman": __version__,
        "threads": 1,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    m = report["machine"]
    lines = [
        f"# Export latency (horizon {HORIZON}, LSTM hidden 64, batch 1)",
        "",
        f"CPU: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, onnxruntime "
        f"{m['onnxruntime']}, {m['threads']} thread, load average {m['load_average']} "
        f"at the start; {report['calls']} timed calls per row.",
        "",
        "| strategy | lookback | runtime | p50 (ms) | p99 (ms) | mean (ms) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['strategy']} | {r['lookback']} | {r['runtime']} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} "
            f"| {r['mean_ms']:.3f} |"
        )
    lines += ["", report["verdict"], ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write through a temp file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="300 calls per row instead of 3000")
    p.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = p.parse_args(argv)
    calls = 300 if args.quick else 3000
    machine = export_machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [r for s in ("direct", "recursive") for r in bench_strategy(s, Path(tmp), calls)]
    onnx_direct = next(
        r for r in rows if r["strategy"] == "direct" and r["runtime"] == "onnxruntime"
    )
    met = onnx_direct["p50_ms"] <= GOAL_MS
    verdict = (
        f"Goal (onnxruntime p50 <= {GOAL_MS} ms, direct): "
        f"{'met' if met else 'NOT met'} ({onnx_direct['p50_ms']:.3f} ms)."
    )
    report = {"machine": machine, "calls": calls, "rows": rows, "verdict": verdict}
    write_atomic(args.out / "export.json", json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    write_atomic(args.out / "export.md", table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
