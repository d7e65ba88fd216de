"""W3 and the defaults check: every shipped real dataset, default settings, one command each.

For each dataset this does what ``elman train --data builtin:NAME --horizon H`` does: hold
out the last H points, fit with default settings, forecast the hold-out, and score the model
beside the baselines. It records the fit's wall time, its epochs and final validation loss,
and whether the model beats seasonal-naive on MASE.

CO2 has real gaps, so it is read with ``--missing interpolate`` (a data policy, not tuning).

Writes benchmarks/results/datasets.{json,md}.
"""

from __future__ import annotations

import argparse
import time

from common import (  # type: ignore[import-not-found]
    machine_info,
    md_table,
    parse_sets,
    write_results,
)

from elman.config import DataConfig
from elman.data.prepare import load_series
from elman.evaluation.holdout import evaluate_holdout, split_holdout
from elman.forecaster import Forecaster

# dataset -> (horizon, extra data options a user must give)
DATASETS = {
    "airline": (12, {}),
    "co2": (52, {"missing": "interpolate"}),
    "sunspots": (11, {}),
    "nile": (10, {}),
    "us_macro": (8, {}),
}


def run(
    name: str, horizon: int, data_opts: dict, model: str, seed: int = 0, ensemble: str = "none",
    loss: str = "mse", extra: dict | None = None,
) -> dict:  # fmt: skip
    series = load_series(f"builtin:{name}", DataConfig(**data_opts))
    f = Forecaster(model, horizon=horizon, progress=False, seed=seed, ensemble=ensemble,
                   loss=loss, baselines="all", **data_opts, **(extra or {}))  # fmt: skip
    t0 = time.perf_counter()
    f.fit(split_holdout(series, horizon))
    seconds = time.perf_counter() - t0
    res = evaluate_holdout(f.predictor, series, horizon, baselines="all")
    others = {k: v["mase"] for k, v in res.metrics.items() if k != "model"}
    best = min(others, key=others.__getitem__)
    st = f.train_state
    assert st is not None and f.sizes is not None
    return {
        "dataset": name,
        "horizon": horizon,
        "model": model,
        "ensemble": ensemble,
        "loss": loss,
        "weights": f.ensemble.weights if f.ensemble is not None else None,
        "seed": seed,
        "series": len(series),
        "lookback": f.sizes.lookback,
        "epochs_run": len(st.history),
        "best_epoch": st.best_epoch + 1,
        "final_val_loss": st.best_loss,
        "fit_seconds": seconds,
        "mase": res.metrics["model"]["mase"],
        "mase_seasonal_naive": res.metrics["seasonal_naive"]["mase"],
        "mase_linear_ar": res.metrics["linear_ar"]["mase"],
        "mase_baselines": others,
        "best_baseline": best,
        "beats_every_baseline": res.metrics["model"]["mase"] < others[best],
        "beats_seasonal_naive": res.metrics["model"]["mase"]
        < res.metrics["seasonal_naive"]["mase"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lstm"])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="one fit per seed")
    p.add_argument("--name", default="datasets", help="results/NAME.{json,md}")
    p.add_argument("--ensemble", default="auto",
                   help="--ensemble of every fit (auto: the default, none, ...)")  # fmt: skip
    p.add_argument("--loss", default="mse", help="--loss of every fit (mse, mae, huber)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="another elman option, e.g. --set highway=false (repeatable)")  # fmt: skip
    args = p.parse_args()
    extra = parse_sets(args.set)
    report: dict = {"machine": machine_info(), "results": []}
    rows = []
    for model in args.models:
        for name, seed in ((n, s) for n in args.datasets for s in args.seeds):
            horizon, opts = DATASETS[name]
            r = run(name, horizon, opts, model, seed, args.ensemble, args.loss, extra)
            r["options"] = extra
            report["results"].append(r)
            rows.append(
                [
                    name,
                    model,
                    seed,
                    horizon,
                    r["lookback"],
                    f"{r['epochs_run']}",
                    f"{r['fit_seconds']:.1f}",
                    f"{r['final_val_loss']:.4f}",
                    f"{r['mase']:.3f}",
                    f"{r['mase_seasonal_naive']:.3f}",
                    f"{r['mase_linear_ar']:.3f}",
                    "yes" if r["beats_seasonal_naive"] else "NO",
                    f"{r['best_baseline']} {r['mase_baselines'][r['best_baseline']]:.3f}",
                    "yes" if r["beats_every_baseline"] else "NO",
                    ", ".join(f"{k} {v:.2f}" for k, v in (r["weights"] or {}).items()) or "-",
                ]
            )
            print(rows[-1], flush=True)
    table = md_table(
        [
            "dataset",
            "model",
            "seed",
            "H",
            "lookback",
            "epochs",
            "fit s",
            "val loss",
            "MASE",
            "seasonal-naive MASE",
            "linear-AR MASE",
            "beats s-naive",
            "best baseline MASE",
            "beats every baseline",
            "ensemble weights",
        ],
        rows,
    )
    print(write_results(args.name, report, table))


if __name__ == "__main__":
    main()
