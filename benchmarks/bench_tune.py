"""``elman tune`` on the shipped datasets and a 30-series sample of M4 Weekly: tuned against
default on the untouched final window, with the number of trials and the wall time; and
``--jobs 2`` against ``--jobs 1`` on the same search.

    python benchmarks/bench_tune.py                       # every dataset, 12 trials each
    python benchmarks/bench_tune.py --datasets airline nile --trials 20
    python benchmarks/bench_tune.py --jobs-compare co2 --trials 6   # only lr varies
    python benchmarks/bench_tune.py --ensemble none --name tune_alone   # the network alone
    python benchmarks/bench_tune.py --m4-samples 12 --name tune_m4      # 12 disjoint samples
    python benchmarks/bench_tune.py --m4-samples 12 --neighbours 0 --name tune_m4_noneigh
    python benchmarks/bench_tune.py --space benchmarks/space_members.toml --name tune_members

Each dataset's search starts from elman's defaults (the configuration ``elman train``
uses), capped at ``--epochs`` epochs so that a trial stays short on a small machine; the
cap applies to the defaults and to every trial alike. Results are merged into
``benchmarks/results/tune.json`` and ``tune.md`` one dataset at a time.

``--m4-samples N`` searches N disjoint 30-series samples of M4 Weekly instead (sample ``j``
holds every 12th series from series ``j + 1`` on; sample 0 is the ``m4_weekly_30`` row), so
that whether a search helps is judged on many series, not on one sample.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from common import RESULTS, machine_info, md_table, write_results

import elman

M4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4_weekly"
# dataset -> (data, horizon, extra data options a user must give, and on the two long
# datasets a cap of batches per epoch that keeps a trial short; the defaults get it too)
DATASETS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "airline": ("builtin:airline", 12, {}),
    "nile": ("builtin:nile", 10, {}),
    "sunspots": ("builtin:sunspots", 11, {}),
    "us_macro": ("builtin:us_macro", 8, {"series_id": "series"}),
    "co2": ("builtin:co2", 52, {"missing": "interpolate", "max_batches": 16}),
    "m4_weekly_30": ("m4", 13, {"series_id": "series", "time_col": "t", "max_batches": 16}),
}
M4_SERIES = 30  # every 12th series of the 359, from W1 on
M4_TAIL = 300  # the last points of each series (training data and test window) kept


def m4_sample(root: Path = M4, offset: int = 0) -> pd.DataFrame:
    """Long table (series, t, value) of every 12th M4 Weekly series from series
    ``offset + 1`` on, each its training data followed by the 13 test points, so the
    untouched window is the M4 test window."""

    def rows(name: str) -> dict[str, list[float]]:
        with gzip.open(root / name, "rt") as fh:
            frame = pd.read_csv(fh)
        return {
            str(r.iloc[0]): [float(v) for v in r.iloc[1:] if not pd.isna(v)]
            for _, r in frame.iterrows()
        }

    train, test = rows("Weekly-train.csv.gz"), rows("Weekly-test.csv.gz")
    ids = list(train)[offset::12][:M4_SERIES]
    parts = []
    for sid in ids:
        values = (train[sid] + test[sid])[-M4_TAIL:]
        parts.append(pd.DataFrame({"series": sid, "t": range(len(values)), "value": values}))
    return pd.concat(parts, ignore_index=True)


# --jobs-compare: only the learning rate varies, so that every trial costs about the same
# and the two runs differ in their number of workers, not in the networks they happen to draw
SAME_COST_SPACE = "replace = true\nlr = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]\n"


def one(
    name: str, trials: int, epochs: int, jobs: int, seeds: int, ensemble: str | None = None,
    sample: int = 0, space: str | None = None, neighbours: int | None = None,
    folds: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    source, horizon, opts = DATASETS[name]
    if ensemble is not None:  # else elman's default (auto)
        opts = {**opts, "ensemble": ensemble}
    data: Any = m4_sample(offset=sample) if source == "m4" else source
    if sample:
        name = f"{name}_s{sample}"
    with tempfile.TemporaryDirectory() as tmp:
        space_file = None
        if space is not None:
            space_file = Path(tmp) / "space.toml"
            space_file.write_text(space)
        t0 = time.perf_counter()
        r = elman.tune(
            data, out=Path(tmp) / name, trials=trials, jobs=jobs, seeds=seeds, top=2,
            train_best=False, horizon=horizon, epochs=epochs, space=space_file,
            neighbours=neighbours, folds=folds, **opts,
        )  # fmt: skip
        wall = time.perf_counter() - t0
    states = [t.state.name.lower() for t in r.trials]
    tuned, default = r.untouched["tuned"], r.untouched["default"]
    spread = max(_spread(tuned), _spread(default))
    return {
        "dataset": name,
        "series": len(r.split.series),
        "horizon": horizon,
        "windows": r.split.folds,
        "trials": len(r.trials),
        "complete": states.count("complete"),
        "pruned": states.count("pruned"),
        "failed": states.count("fail"),
        "jobs": jobs,
        "epochs_cap": epochs,
        "wall_s": round(wall, 1),
        "tuned": tuned,
        "default": default,
        "tuned_mean": statistics.fmean(tuned),
        "default_mean": statistics.fmean(default),
        "seed_spread": spread,
        "chosen_trial": r.chosen.trial,
        "note": r.note,
        "candidates": [
            {"trial": c.trial, "mean": c.mean, "spread": c.spread, "scores": c.scores}
            for c in r.candidates
        ],
        "chosen": r.chosen.params,
        "default_params": r.default_params,
    }


def _spread(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) - min(finite) if len(finite) > 1 else 0.0


def verdict(row: dict[str, Any]) -> str:
    t, d, s = row["tuned_mean"], row["default_mean"], row["seed_spread"]
    if row["chosen"] == row.get("default_params", {}) or row["tuned"] == row["default"]:
        return "kept the defaults"
    if t < d - s:
        return "better, beyond the seed spread"
    if t < d:
        return "better, within the seed spread"
    return "worse, within the seed spread" if t <= d + s else "WORSE beyond the seed spread"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["dataset", "series", "H", "windows", "trials (c/p/f)", "jobs", "wall s",
            "default MASE", "tuned MASE", "seed spread", "verdict"]  # fmt: skip
    body = [
        [
            r["dataset"], r["series"], r["horizon"], r["windows"],
            f"{r['trials']} ({r['complete']}/{r['pruned']}/{r['failed']})", r["jobs"],
            r["wall_s"], f"{r['default_mean']:.3f}", f"{r['tuned_mean']:.3f}",
            f"{r['seed_spread']:.3f}", verdict(r),
        ]  # fmt: skip
        for r in rows
    ]
    return md_table(head, body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--jobs-compare", metavar="DATASET", choices=list(DATASETS))
    p.add_argument("--name", default="tune", help="results file name (two runs at once)")
    p.add_argument("--ensemble", default=None, help="--ensemble of every search (none: the "
                   "network alone, tuned and compared; default: elman's own, auto)")
    p.add_argument("--m4-samples", type=int, default=0, metavar="N",
                   help="search N disjoint 30-series samples of M4 Weekly (at most 12)")
    p.add_argument("--neighbours", type=int, default=None, metavar="N",
                   help="elman tune --neighbours (default: elman's own; 0: none)")
    p.add_argument("--space", type=Path, default=None, metavar="FILE",
                   help="elman tune --space FILE for every search (default: elman's own)")
    p.add_argument("--folds", type=int, default=None, metavar="K",
                   help="elman tune --folds K (default: from the count and length)")
    args = p.parse_args()
    space = args.space.read_text() if args.space is not None else None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = RESULTS / f"{args.name}.json"
    report = json.loads(path.read_text()) if path.exists() else {"rows": {}, "jobs": {}}
    report["machine"] = machine_info()
    if args.jobs_compare:
        name = args.jobs_compare
        runs = {
            j: one(name, args.trials, args.epochs, j, 1, space=SAME_COST_SPACE) for j in (1, 2)
        }
        report["jobs"] = {str(j): {k: r[k] for k in ("dataset", "trials", "wall_s")}
                          for j, r in runs.items()}  # fmt: skip
    else:
        runs = [(n, 0) for n in args.datasets]
        if args.m4_samples:
            runs = [("m4_weekly_30", j) for j in range(min(args.m4_samples, 12))]
        for name, sample in runs:
            row = one(name, args.trials, args.epochs, args.jobs, args.seeds, args.ensemble,
                      sample, space=space, neighbours=args.neighbours,
                      folds=args.folds)  # fmt: skip
            report["rows"][row["dataset"]] = row
            print(json.dumps(row), flush=True)
            write_results(args.name, report, _text(report))
    write_results(args.name, report, _text(report))


def summary(rows: list[dict[str, Any]]) -> str:
    """How many searches each verdict got, and the mean MASE of default and tuned."""
    if not rows:
        return ""
    counts: dict[str, int] = {}
    for r in rows:
        counts[verdict(r)] = counts.get(verdict(r), 0) + 1
    said = ", ".join(f"{v}: {n}" for v, n in sorted(counts.items()))
    d = statistics.fmean(r["default_mean"] for r in rows)
    t = statistics.fmean(r["tuned_mean"] for r in rows)
    return f"{len(rows)} searches. {said}. Mean MASE: default {d:.3f}, tuned {t:.3f}.\n"


def _text(report: dict[str, Any]) -> str:
    rows = list(report["rows"].values())
    text = table(rows) + "\n" + summary(rows)
    if report.get("jobs"):
        j = report["jobs"]
        text += "\n" + md_table(
            ["dataset", "trials", "--jobs 1 wall s", "--jobs 2 wall s"],
            [[j["1"]["dataset"], j["1"]["trials"], j["1"]["wall_s"], j["2"]["wall_s"]]],
        )
    return text


if __name__ == "__main__":
    main()
