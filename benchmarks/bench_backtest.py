"""Time a rolling-origin backtest: 100 cutoffs x horizon 24 on a 10,000-point series.

``Forecaster.backtest(..., refit="never")`` trains once on the data before the first cutoff,
then forecasts every cutoff in one batched forward pass. This script times each phase
(training, the batched forecast, the four baselines, the metrics) and, for comparison,
forecasts the same cutoffs the obvious way: one ``forecast_arrays`` call per cutoff in a
Python loop. It checks that both give the same numbers.

Results go to ``benchmarks/results/backtest.{json,md}`` with the machine (CPU model, cores),
torch version, threads and the load average, since timings on a busy machine are not
comparable.

Usage::

    python benchmarks/bench_backtest.py            # the documented setting
    python benchmarks/bench_backtest.py --quick    # 2 epochs, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine_info  # type: ignore[import-not-found]

from elman.data.prepare import load_series
from elman.data.synthetic import noisy_sine
from elman.evaluation.scores import MODEL
from elman.forecaster import Forecaster

RESULTS = Path(__file__).resolve().parent / "results"


def loop_forecasts(f: Forecaster, y: np.ndarray, cutoffs: np.ndarray, horizon: int) -> Any:
    """The per-cutoff loop: one model call per cutoff. Returns (forecasts [K, H], seconds)."""
    full = load_series(y, f.config.data)[0]
    t0 = time.perf_counter()
    out = np.stack([f.forecast_arrays([full.slice(0, int(k))], horizon)[0, :, 0] for k in cutoffs])
    return out, time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    y = noisy_sine(args.length, noise=0.2, seed=0, period=24.0)
    f = Forecaster(
        args.model,
        horizon=args.horizon,
        lookback=args.lookback,
        hidden_size=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch,
        threads=args.threads,
        device="cpu",
        progress=False,
        ensemble="none",  # the network's batched backtest, as measured in docs/performance.md
    )
    t0 = time.perf_counter()
    result = f.backtest(y, folds=args.folds, refit="never", intervals=(80, 95))
    total = time.perf_counter() - t0
    cut = result.cutoffs[0]
    looped, loop_s = loop_forecasts(f, y, cut, args.horizon)
    diff = float(np.max(np.abs(looped - result.forecasts[MODEL][0, :, :, 0])))
    t = result.timings
    return {
        "settings": {
            "length": args.length,
            "folds": args.folds,
            "horizon": args.horizon,
            "stride": result.stride,
            "model": args.model,
            "hidden_size": args.hidden,
            "lookback": args.lookback,
            "epochs": args.epochs,
            "batch_size": args.batch,
            "train_points": int(cut[0]),
        },
        "fits": result.fits,
        "forecast_passes": result.passes,
        "seconds": {
            "total": total,
            "fit": t["fit_s"],
            "forecast_batched": t["forecast_s"],
            "baselines": t["baselines_s"],
            "metrics": t["metrics_s"],
            "forecast_loop": loop_s,
        },
        "loop_speedup": loop_s / max(t["forecast_s"], 1e-9),
        "max_abs_diff_loop_vs_batched": diff,
        "coverage": {k: result.metrics[MODEL][f"coverage_{k}"] for k in (80, 95)},
        "mase": {name: m["mase"] for name, m in result.metrics.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    """The results as a short Markdown table."""
    m, s, sec = report["machine"], report["settings"], report["seconds"]
    lines = [
        f"CPU: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads; "
        f"load average {report['load_before']:.2f} before, {report['load_after']:.2f} after.",
        f"Series of {s['length']:,} points, {s['folds']} cutoffs x horizon {s['horizon']} "
        f"(stride {s['stride']}), refit never: {report['fits']} fit on the first "
        f"{s['train_points']:,} points, {report['forecast_passes']} batched forecast pass. "
        f"Model {s['model']}, hidden {s['hidden_size']}, lookback {s['lookback']}, "
        f"{s['epochs']} epochs, batch {s['batch_size']}.",
        "",
        "| phase | seconds |",
        "|---|---:|",
        f"| train once | {sec['fit']:.2f} |",
        f"| forecast 100 cutoffs, one batched pass | {sec['forecast_batched']:.4f} |",
        f"| baselines (naive, seasonal naive, drift, linear AR) | {sec['baselines']:.4f} |",
        f"| metrics, intervals, coverage | {sec['metrics']:.3f} |",
        f"| **whole backtest** | **{sec['total']:.2f}** |",
        f"| for comparison: forecast in a per-cutoff loop | {sec['forecast_loop']:.3f} |",
        "",
        f"The batched pass is {report['loop_speedup']:.0f}x faster than the loop and agrees "
        f"with it to {report['max_abs_diff_loop_vs_batched']:.1e}. Cross-fitted interval "
        f"coverage: 80% -> {report['coverage']['80']:.3f}, 95% -> "
        f"{report['coverage']['95']:.3f}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Time a 100-cutoff rolling-origin backtest.")
    p.add_argument("--quick", action="store_true", help="2 epochs: a smoke run")
    p.add_argument("--length", type=int, default=10_000, help="series length (default 10000)")
    p.add_argument("--folds", type=int, default=100, help="cutoffs (default 100)")
    p.add_argument("--horizon", type=int, default=24, help="forecast steps (default 24)")
    p.add_argument("--model", default="lstm", help="network (default lstm)")
    p.add_argument("--hidden", type=int, default=32, help="hidden size (default 32)")
    p.add_argument("--lookback", type=int, default=48, help="input window (default 48)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    p.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 2
    return args


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file, so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    body = run(args)
    report = {
        "benchmark": "backtest",
        "machine": machine_info(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        **body,
    }
    report["coverage"] = {str(k): v for k, v in report["coverage"].items()}
    name = "backtest_quick" if args.quick else "backtest"
    write_atomic(args.out / f"{name}.json", json.dumps(report, indent=2) + "\n")
    write_atomic(args.out / f"{name}.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
