"""W4, forecast latency: p50 and p99 of one 24-step forecast of one series, in-process.

A model with 64 hidden units is fitted briefly (latency does not depend on how well it is
trained) on an hourly-like series (period 24, noise), lookback 168, horizon 24. Then three
ways to get the forecast are timed, each ``--calls`` times after a warm-up:

* ``Forecaster.predict()``: the public API; scales the tail, runs the model, unscales and
  builds a DataFrame indexed by the future time stamps;
* ``forecast_arrays``: the same without the DataFrame, ``[S, H, n_t]`` in real units;
* ``model``: the network alone on a prepared ``[1, L, C_in]`` tensor under ``no_grad``
  (``forecast_batch``: one pass for ``direct``, a warm-up and 23 fed-back steps for
  ``recursive``).

Each is measured with 1 torch thread and with the default (physical cores). With
``--device cuda`` the model is also fitted on the GPU and the ``model`` row runs there
(with a synchronisation per call); ``predict`` and ``forecast_arrays`` always run on the
CPU, where the Forecaster keeps its model after fitting.
Results: ``benchmarks/results/latency.{json,md}`` (``latency_cuda`` on the GPU).

Usage::

    python benchmarks/bench_latency.py                  # 1,000 calls per row
    python benchmarks/bench_latency.py --quick          # LSTM direct, 1 thread, 50 calls
    python benchmarks/bench_latency.py --device cuda    # model row on the GPU
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from typing import Any

import torch
from common import (  # type: ignore[import-not-found]
    machine_info,
    md_table,
    percentiles,
    timings,
    write_results,
)

from elman.data.prepare import scaled_tensor
from elman.data.synthetic import noisy_sine
from elman.data.windows import features
from elman.forecaster import Forecaster
from elman.forecasting.strategies import forecast_batch
from elman.runtime import choose_device, physical_cores, torch_threads

HORIZON, LOOKBACK, HIDDEN = 24, 168, 64
CASES = [("lstm", "direct"), ("gru", "direct"), ("elman", "direct"), ("lstm", "recursive")]


def fitted(model: str, strategy: str, device: str) -> Forecaster:
    """A briefly fitted forecaster (2 epochs of 20 batches)."""
    y = noisy_sine(3000, noise=0.1, seed=0, period=24.0)
    f = Forecaster(
        model, horizon=HORIZON, lookback=LOOKBACK, hidden_size=HIDDEN, strategy=strategy,
        epochs=2, max_batches=20, val_size=200, progress=False, device=device, ensemble="none",
    )  # fmt: skip
    return f.fit(y)


def model_call(f: Forecaster, device: torch.device) -> Callable[[], Any]:
    """The network alone on the normalised last window, on ``device``."""
    assert f.model is not None and f.sizes is not None and f.layout is not None
    s = f.series[0]
    x = features(scaled_tensor(s.tail(LOOKBACK), f.scaler_for(s)), f.layout)[None]  # [1, L, C_in]
    x = (x - x[:, -1:]).to(device)  # norm "last"
    model = copy.deepcopy(f.model).to(device).eval()
    strategy, layout = f.config.model.strategy, f.layout
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    @torch.no_grad()
    def call() -> None:
        forecast_batch(model, x, None, strategy, LOOKBACK, HORIZON, layout)
        sync()

    return call


def measure(f: Forecaster, device: torch.device, threads: int, args: argparse.Namespace) -> list:
    """p50 / p99 of the three paths with ``threads`` torch threads."""
    paths = {
        "Forecaster.predict": lambda: f.predict(),
        "forecast_arrays": lambda: f.forecast_arrays(f.series, HORIZON),
        f"model ({device.type})": model_call(f, device),
    }
    rows = []
    with torch_threads(threads):
        for name, fn in paths.items():
            stats = percentiles(timings(fn, args.calls, warmup=args.warmup))
            rows.append({"path": name, "threads": threads, **stats})
    return rows


def table(report: dict[str, Any]) -> str:
    s = report["settings"]
    rows = [
        [r["model"], r["strategy"], r["path"], r["threads"], f"{1e3 * r['p50']:.3f}",
         f"{1e3 * r['p99']:.3f}", f"{1e3 * r['mean']:.3f}"]
        for r in report["results"]
    ]  # fmt: skip
    return (
        f"One series, horizon {HORIZON}, lookback {LOOKBACK}, {HIDDEN} hidden units, "
        f"{s['calls']} calls per row after {s['warmup']} warm-up calls; load "
        f"{report['load_before_after']} (1-minute average before, after).\n\n"
        + md_table(["model", "strategy", "path", "threads", "p50 ms", "p99 ms", "mean ms"], rows)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="LSTM direct, 1 thread, 50 calls per row")
    p.add_argument("--calls", type=int, default=1000, help="timed calls per row (1,000)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls first (20)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="model row device")
    args = p.parse_args(argv)
    cases = CASES[:1] if args.quick else CASES
    threads = [1] if args.quick else sorted({1, physical_cores()})
    if args.quick:
        args.calls = 50
    device = choose_device(args.device)
    load0 = machine_info()["load_1min"]
    results = []
    for model, strategy in cases:
        f = fitted(model, strategy, args.device)
        for n in threads:
            for r in measure(f, device, n, args):
                results.append({"model": model, "strategy": strategy, **r})
                print(f"{model:6s} {strategy:9s} {r['path']:20s} {n} thr  "
                      f"p50 {1e3 * r['p50']:.3f} ms  p99 {1e3 * r['p99']:.3f} ms")  # fmt: skip
    report = {
        "benchmark": "latency",
        "machine": machine_info(),
        "load_before_after": [load0, machine_info()["load_1min"]],
        "settings": {
            "calls": args.calls,
            "warmup": args.warmup,
            "device": args.device,
            "horizon": HORIZON,
            "lookback": LOOKBACK,
            "hidden_size": HIDDEN,
        },  # fmt: skip
        "results": results,
    }
    name = "latency" + ("_cuda" if args.device == "cuda" else "") + ("_quick" if args.quick else "")
    write_results(name, report, table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
