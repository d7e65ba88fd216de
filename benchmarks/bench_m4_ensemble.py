"""M4 Weekly: a validated ensemble of elman's network and statistical members (OWA).

The weights are chosen on a validation window and only then scored on the M4 test values:

1. **Validation.** Every series loses its last 13 points (one window: with 359 series,
   :func:`elman.evaluation.folds.validation_folds` asks for one). The default global LSTM
   (``--seeds`` seeds, their mean is the member ``lstm``) is trained on what is left, and
   ETS, Theta, naive, seasonal naive and drift are fitted on it per series. Each member
   forecasts the 13 held-back points.
2. **Selection.** :func:`elman.evaluation.ensemble.select` (greedy selection with
   replacement, 20 rounds) weighs the members by their MASE on that window (the M4 scale,
   frequency 1).
3. **Test.** Every member is fitted again on the whole M4 training part, the weights are
   applied, and the combination is scored by the M4 rules (sMAPE, MASE, OWA against
   Naive2).

Nothing is chosen on the test values: the weights come from step 2 alone. Each member's own
test score and the equal-weight mean of all members are printed beside the ensemble.

Usage::

    python benchmarks/bench_m4_ensemble.py               # seeds 0 1 2
    python benchmarks/bench_m4_ensemble.py --limit 40 --seeds 0

Results: ``benchmarks/results/m4_ensemble.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_m4 import (  # type: ignore[import-not-found]
    DATA,
    HORIZON,
    PERIOD,
    M4Data,
    build_config,
    fit_global,
    load_m4,
    naive2_forecasts,
    parse_args,
)
from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

from elman.evaluation import m4
from elman.evaluation.baselines import BASELINES
from elman.evaluation.ensemble import ROUNDS, combine, select
from elman.evaluation.metrics import mase_scale

SEASON = 52
STATISTICAL = ("ets", "theta", "naive", "seasonal_naive", "drift")


def members(data: M4Data, seeds: list[int]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every member's forecasts ``[S, H]`` of ``data.test``'s positions, and fit seconds."""
    fc: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    nets = []
    t0 = time.perf_counter()
    for seed in seeds:
        preds, _, _ = fit_global(data, build_config(parse_args(["--set", f"seed={seed}"])))
        nets.append(np.stack(preds))
    fc["lstm"], seconds["lstm"] = np.mean(nets, axis=0), time.perf_counter() - t0
    for name in STATISTICAL:
        t0 = time.perf_counter()
        fc[name] = np.stack([BASELINES[name].forecast(y, HORIZON, SEASON) for y in data.train])
        seconds[name] = time.perf_counter() - t0
        print(f"  {name}: {seconds[name]:.0f} s", flush=True)
    print(f"  lstm ({len(seeds)} seeds): {seconds['lstm']:.0f} s", flush=True)
    return fc, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--limit", type=int, default=None, help="only the first N series")
    args = p.parse_args()
    full = load_m4(DATA).head(args.limit)
    val = M4Data(full.ids, [y[:-HORIZON] for y in full.train],
                 [y[-HORIZON:] for y in full.train])  # fmt: skip
    t_all = time.perf_counter()
    print("validation fits (each series without its last 13 points):", flush=True)
    val_fc, val_s = members(val, args.seeds)
    scale = np.array([mase_scale(y, PERIOD) for y in val.train])
    sel = select(val_fc, np.stack(val.test), scale, ROUNDS)
    print(f"weights: {sel.weights}", flush=True)
    print("test fits (the whole M4 training part):", flush=True)
    test_fc, test_s = members(full, args.seeds)
    total = time.perf_counter() - t_all
    naive2 = m4.score(full.train, full.test, naive2_forecasts(full), PERIOD)
    rows = []
    methods = {**test_fc, "equal mean of all members": np.mean(list(test_fc.values()), axis=0),
               "validated ensemble": combine(sel.weights, test_fc)}  # fmt: skip
    for name, f in methods.items():
        sc = m4.score(full.train, full.test, list(f), PERIOD)
        s, m = sc.mean()
        rows.append({
            "method": name, "smape": s, "mase": m, "owa": sc.owa(naive2),
            "weight": sel.weights.get(name, 0.0) if name in test_fc else None,
            "validation_mase": sel.member_loss.get(name, sel.loss if name == "validated ensemble"
                                                   else None),
            "fit_s": (val_s[name] + test_s[name]) if name in test_s else None,
        })  # fmt: skip
        print(f"{name:28s} sMAPE {s:.3f}  MASE {m:.3f}  OWA {rows[-1]['owa']:.3f}", flush=True)
    table = md_table(
        ["method", "weight", "validation MASE", "sMAPE", "MASE", "OWA", "fit s (val + test)"],
        [[r["method"], "" if r["weight"] is None else f"{r['weight']:.2f}",
          "" if r["validation_mase"] is None else f"{r['validation_mase']:.3f}",
          f"{r['smape']:.3f}", f"{r['mase']:.3f}", f"{r['owa']:.3f}",
          "" if r["fit_s"] is None else f"{r['fit_s']:.0f}"] for r in rows],
    )  # fmt: skip
    note = (
        f"M4 Weekly, {len(full.ids)} series, horizon 13; lstm = mean of seeds {args.seeds}; "
        f"weights from one validation window (greedy selection, {ROUNDS} rounds); everything "
        f"(validation and test fits) took {total:.0f} s; load average at the end "
        f"{os.getloadavg()[0]:.1f}. Published: Smyl's ES-RNN OWA 0.851, best Weekly entry 0.739."
        "\n\n"
    )
    report = {"machine": machine_info(), "seeds": args.seeds, "series": len(full.ids),
              "selection": sel.to_dict(), "rows": rows, "total_s": total}  # fmt: skip
    write_results("m4_ensemble" if args.limit is None else f"m4_ensemble_{args.limit}",
                  report, note + table)  # fmt: skip
    print(note + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
