"""M4 Weekly: what equal-weight combinations of elman's forecasts score (OWA).

Fits elman's default global LSTM with ``--seeds`` seeds (as ``bench_m4.py`` does) and
elman's ETS and Theta baselines (statsforecast, season 52) on all 359 series, then scores a
fixed list of equal-weight combinations, declared below before any result was seen: the
mean and the median of the seeds, and the mean or median of the seed mean with ETS and/or
Theta. No weight is fitted, so nothing here is chosen on the test values; which
combination to ship must still be chosen on validation windows (an ensemble feature), not
from this table.

Usage::

    python benchmarks/bench_m4_combinations.py             # 5 seeds, about 7 minutes
    python benchmarks/bench_m4_combinations.py --seeds 0 1 # fewer seeds

Results: ``benchmarks/results/m4_combinations.{json,md}``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_m4 import (  # type: ignore[import-not-found]
    DATA,
    PERIOD,
    build_config,
    fit_global,
    load_m4,
    naive2_forecasts,
    parse_args,
    statistical_forecasts,
)
from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

from elman.evaluation import m4


def combinations(fc: dict[str, np.ndarray], seeds: list[int]) -> dict[str, np.ndarray]:
    """The declared combinations (every forecast ``[S, H]``)."""
    nets = np.stack([fc[f"lstm seed {s}"] for s in seeds])
    net, ets, theta = nets.mean(0), fc["ets"], fc["theta"]
    return {
        **fc,
        f"lstm, mean of {len(seeds)} seeds": net,
        f"lstm, median of {len(seeds)} seeds": np.median(nets, 0),
        "mean(ets, theta)": (ets + theta) / 2,
        "mean(lstm, ets)": (net + ets) / 2,
        "mean(lstm, theta)": (net + theta) / 2,
        "mean(lstm, ets, theta)": (net + ets + theta) / 3,
        "median(lstm, ets, theta)": np.median(np.stack([net, ets, theta]), 0),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    args = p.parse_args()
    data = load_m4(DATA)
    naive2 = m4.score(data.train, data.test, naive2_forecasts(data), PERIOD)
    fc: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for seed in args.seeds:
        preds, sec, _ = fit_global(data, build_config(parse_args(["--set", f"seed={seed}"])))
        fc[f"lstm seed {seed}"], seconds[f"lstm seed {seed}"] = np.stack(preds), sec
        print(f"lstm seed {seed}: fit {sec:.1f} s", flush=True)
    t0 = time.perf_counter()
    for name, (preds, sec) in statistical_forecasts(data, 52).items():
        fc[name], seconds[name] = np.stack(preds), sec
        print(f"{name}: {sec:.1f} s", flush=True)
    stat_s = time.perf_counter() - t0
    rows = []
    for name, f in combinations(fc, args.seeds).items():
        sc = m4.score(data.train, data.test, list(f), PERIOD)
        s, m = sc.mean()
        rows.append({"method": name, "smape": s, "mase": m, "owa": sc.owa(naive2),
                     "seconds": seconds.get(name)})  # fmt: skip
        print(f"{name:32s} sMAPE {s:.3f}  MASE {m:.3f}  OWA {rows[-1]['owa']:.3f}", flush=True)
    table = md_table(
        ["method", "sMAPE", "MASE", "OWA", "fit s"],
        [[r["method"], f"{r['smape']:.3f}", f"{r['mase']:.3f}", f"{r['owa']:.3f}",
          "" if r["seconds"] is None else f"{r['seconds']:.0f}"] for r in rows],
    )  # fmt: skip
    note = (
        f"M4 Weekly, 359 series, horizon 13; statistical fits {stat_s:.0f} s in all; "
        "published: Smyl's ES-RNN OWA 0.851, best Weekly entry 0.739.\n\n"
    )
    write_results("m4_combinations", {"machine": machine_info(), "rows": rows}, note + table)
    print(note + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
