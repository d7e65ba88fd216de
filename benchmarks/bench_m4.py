"""The M4 Weekly benchmark: elman's default, one global model, beside the M4 methods.

The data (``--data``, default ``../shared/data/m4_weekly/``) holds the 359 weekly series of
the M4 competition (80 to 2,597 points each), their next 13 values, and every method's
published Weekly score. The script:

1. checks the metric code: Naive2 on all 359 series must reproduce the published Weekly
   Naive2 (sMAPE 9.161, MASE 2.777) to within 0.01, else it stops with exit code 1;
2. trains ONE global model on every series' full history, as one command would::

       elman train --data m4_weekly_long.csv --series-id id --time-col t --target y \\
           --horizon 13 --season 52 --test-size 0

   (``--model`` and ``--set NAME=VALUE`` change the model and any option; ``--config``
   starts from a TOML file), forecasts 13 steps and scores them by the M4 rules
   (:mod:`elman.evaluation.m4`);
3. prints and saves a table of elman beside the published methods (sMAPE, MASE, OWA, fit
   time), broken down by series length (the 80-point series against the longer ones).

Files: ``benchmarks/results/NAME.{json,md}`` and ``NAME_series.csv`` (per series: length,
elman and Naive2 sMAPE and MASE, and elman's 13 forecasts). NAME is ``m4_weekly``, or
``m4_weekly_limitN`` with ``--limit N``; ``--name`` overrides it.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import (  # type: ignore[import-not-found]
    RESULTS,
    machine_info,
    md_table,
    parse_sets,
    write_results,
)

from elman.config import Config
from elman.evaluation import m4
from elman.forecaster import Forecaster

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "m4_weekly"
HORIZON = 13
PERIOD = m4.m4_frequency("weekly")  # 1: the MASE scale and Naive2 of M4 Weekly
SEASON = 52  # what a user gives elman for weekly data (--season 52)
PUBLISHED_NAIVE2 = (9.161, 2.777)  # Weekly sMAPE, MASE
TOLERANCE = 0.01
SHORT = 80  # the length of the shortest Weekly series (65 of them)
# The published methods shown beside elman (the full list is in published_weekly.csv).
REFERENCES = {
    "Sarah Darin": "best Weekly entry",
    "Pablo Montero-Manso": "FFORMA",
    "Slawek Smyl": "ES-RNN",
    "Damped": "benchmark",
    "Com": "benchmark Comb (SES/Holt/Damped)",
    "Theta": "benchmark",
    "SES": "benchmark",
    "Naive2": "benchmark",
    "RNN": "benchmark",
    "MLP": "benchmark",
}


@dataclass
class M4Data:
    """The M4 series: ids, histories and held-out values, in the files' order."""

    ids: list[str]
    train: list[np.ndarray]  # [T_s] each
    test: list[np.ndarray]  # [H] each

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(y) for y in self.train])

    def head(self, n: int | None) -> M4Data:
        k = len(self.ids) if n is None else n
        return M4Data(self.ids[:k], self.train[:k], self.test[:k])


def load_m4(folder: Path, subset: str = "Weekly") -> M4Data:
    """Read ``{subset}-train.csv.gz`` and ``{subset}-test.csv.gz`` (one row per series,
    the id in ``V1``, rows padded with empty cells)."""

    def rows(name: str) -> dict[str, np.ndarray]:
        frame = pd.read_csv(folder / name, index_col=0)
        return {str(i): r.dropna().to_numpy(np.float64) for i, r in frame.iterrows()}

    train, test = rows(f"{subset}-train.csv.gz"), rows(f"{subset}-test.csv.gz")
    ids = list(train)
    return M4Data(ids, [train[i] for i in ids], [test[i] for i in ids])


def long_frame(data: M4Data) -> pd.DataFrame:
    """The series as one long table: ``id``, ``t`` (0, 1, ... per series), ``y``."""
    return pd.DataFrame(
        {
            "id": np.repeat(data.ids, data.lengths),
            "t": np.concatenate([np.arange(n) for n in data.lengths]),
            "y": np.concatenate(data.train),
        }
    )


def naive2_forecasts(data: M4Data, period: int = PERIOD) -> list[np.ndarray]:
    return [m4.naive2(y, HORIZON, period) for y in data.train]


def check_naive2(full: M4Data) -> tuple[float, float, bool]:
    """Naive2 on every series against the published Weekly Naive2."""
    s, m = m4.score(full.train, full.test, naive2_forecasts(full), PERIOD).mean()
    ok = abs(s - PUBLISHED_NAIVE2[0]) <= TOLERANCE and abs(m - PUBLISHED_NAIVE2[1]) <= TOLERANCE
    return s, m, ok


def fit_global(data: M4Data, config: Config) -> tuple[list[np.ndarray], float, Forecaster]:
    """One global model over every series; forecasts in ``data``'s order and the seconds of
    the fit and the forecast."""
    f = Forecaster(config=config)
    t0 = time.perf_counter()
    f.fit(long_frame(data))
    preds = f.forecast_arrays(f.series, HORIZON)  # [S, H, 1], the series sorted by id
    seconds = time.perf_counter() - t0  # training, and the forecast (an ensemble's members)
    by_id = {str(s.series_id): preds[i, :, 0] for i, s in enumerate(f.series)}
    return [by_id[i] for i in data.ids], seconds, f


def build_config(args: argparse.Namespace) -> Config:
    base = Config.from_toml(args.config) if args.config else Config()
    options: dict[str, Any] = {
        "series_id": "id",
        "time_col": "t",
        "target": ("y",),
        "horizon": HORIZON,
        "season": args.season,
        "test_size": 0,
        "progress": False,
    }
    if args.model:
        options["model"] = args.model
    options.update(parse_sets(args.set))
    return base.replace(**options)


def command_line(config: Config) -> str:
    """The ``elman train`` command equivalent to a config (options that differ from the
    defaults)."""
    default, mine = Config().to_dict(), config.to_dict()
    parts = ["elman train --data m4_weekly_long.csv"]
    for section, values in mine.items():
        for name, value in values.items():
            if value == default[section][name] or name == "progress":
                continue
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + name.replace("_", "-"))
            else:
                shown = ",".join(value) if isinstance(value, list) else value
                parts.append(f"{flag} {shown}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- tables


def score_rows(
    data: M4Data, methods: dict[str, list[np.ndarray]]
) -> tuple[dict[str, m4.M4Scores], list[dict[str, Any]]]:
    """Each method's scores, and one row per method and series group (all, by length);
    ``methods`` includes ``Naive2``, the reference of OWA."""
    scores = {name: m4.score(data.train, data.test, f, PERIOD) for name, f in methods.items()}
    naive2 = scores["Naive2"]
    groups = {
        "all": np.ones(len(data.ids), dtype=bool),
        f"{SHORT} points": data.lengths <= SHORT,
        f"over {SHORT} points": data.lengths > SHORT,
    }
    rows = []
    for group, mask in groups.items():
        if not mask.any():
            continue
        for name, sc in scores.items():
            s, m = sc.mean(mask)
            rows.append(
                {
                    "group": group,
                    "series": int(mask.sum()),
                    "method": name,
                    "smape": s,
                    "mase": m,
                    "owa": sc.owa(naive2, mask),
                }
            )
    return scores, rows


def published(folder: Path) -> list[dict[str, Any]]:
    frame = pd.read_csv(folder / "published_weekly.csv")
    out = []
    for r in frame.itertuples():
        if r.method in REFERENCES:
            out.append(
                {
                    "method": f"{r.method} ({REFERENCES[r.method]})",
                    "smape": r.sMAPE,
                    "mase": r.MASE,
                    "owa": r.OWA,
                }
            )
    return out


def main_table(
    ours: list[dict[str, Any]], refs: list[dict[str, Any]], seconds: dict[str, float]
) -> str:
    """elman's rows (with fit seconds) and the published ones, sorted by OWA."""
    rows = [dict(r, fit=f"{seconds[r['method']]:.0f} s" if r["method"] in seconds else "")
            for r in ours]  # fmt: skip
    rows += [dict(r, method=f"M4: {r['method']}", fit="") for r in refs]
    rows.sort(key=lambda r: r["owa"])
    return md_table(
        ["method", "sMAPE", "MASE", "OWA", "fit"],
        [
            [r["method"], f"{r['smape']:.3f}", f"{r['mase']:.3f}", f"{r['owa']:.3f}", r["fit"]]
            for r in rows
        ],
    )


def group_table(rows: list[dict[str, Any]]) -> str:
    cells = [
        [r["group"], r["series"], r["method"]] + [f"{r[k]:.3f}" for k in ("smape", "mase", "owa")]
        for r in rows
    ]
    return md_table(["series", "count", "method", "sMAPE", "MASE", "OWA"], cells)


def series_csv(
    data: M4Data, scores: dict[str, m4.M4Scores], forecasts: dict[str, list[np.ndarray]]
) -> str:
    """One row per series: id, length, each method's sMAPE and MASE, then its forecasts."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(scores)
    w.writerow(
        ["id", "length"]
        + [f"{n}_{k}" for n in names for k in ("smape", "mase")]
        + [f"{n}_f{h + 1}" for n in names for h in range(HORIZON)]
    )
    for i, sid in enumerate(data.ids):
        cells = [f"{v:.6g}" for n in names for v in (scores[n].smape[i], scores[n].mase[i])]
        cells += [f"{v:.6g}" for n in names for v in forecasts[n][i]]
        w.writerow([sid, int(data.lengths[i]), *cells])
    return buf.getvalue()


def statistical_forecasts(data: M4Data, season: int) -> dict[str, tuple[list[np.ndarray], float]]:
    """elman's ETS and Theta baselines on every series: forecasts and total seconds."""
    from elman.evaluation.baselines import BASELINES

    out = {}
    for name in ("ets", "theta"):
        t0 = time.perf_counter()
        fc = [BASELINES[name].forecast(y, HORIZON, season) for y in data.train]
        out[name] = (fc, time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DATA, help="folder of the M4 Weekly files")
    p.add_argument("--limit", type=int, default=None, help="only the first N series")
    p.add_argument("--model", default=None, help="elman's model (default: the library's)")
    p.add_argument("--season", type=int, default=SEASON, help="season given to elman (52)")
    p.add_argument("--config", type=Path, default=None, help="a TOML config to start from")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any elman option, e.g. --set weight_decay=0.01 --set highway=false (repeatable)",
    )
    p.add_argument(
        "--statistical",
        action="store_true",
        help="also score elman's ETS and Theta baselines (statsforecast) with --season",
    )
    p.add_argument("--skip-model", action="store_true", help="do not train the network")
    p.add_argument("--name", default=None, help="result file name (default m4_weekly[_limitN])")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    full = load_m4(args.data)
    s, m, ok = check_naive2(full)
    print(
        f"check: Naive2 on all {len(full.ids)} series: sMAPE {s:.3f}, MASE {m:.3f} "
        f"(published {PUBLISHED_NAIVE2[0]}, {PUBLISHED_NAIVE2[1]}; tolerance {TOLERANCE}): "
        + ("ok" if ok else "FAILED")
    )
    if not ok:
        return 1
    data = full.head(args.limit)
    config = build_config(args)
    machine = machine_info()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    methods: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    report: dict[str, Any] = {"machine": machine, "started": started, "series": len(data.ids)}
    detail = ""
    if not args.skip_model:
        print(f"elman: {len(data.ids)} series, one global model: {command_line(config)}")
        methods["elman"], seconds["elman"], f = fit_global(data, config)
        state = f.train_state
        assert state is not None and f.sizes is not None
        detail = (
            f"{len(data.ids)} series, horizon {HORIZON}, lookback {f.sizes.lookback}, "
            f"{len(state.history)} epochs (best {state.best_epoch + 1}), "
            f"fit and forecast {seconds['elman']:.1f} s."
        )
        if f.ensemble is not None:
            weights = ", ".join(f"{k} {v:.2f}" for k, v in f.ensemble.weights.items())
            detail += f" Ensemble weights: {weights} ({f.ensemble.windows} window(s) per series)."
            report["ensemble"] = f.ensemble.to_dict()
        report.update(
            command=command_line(config),
            config=config.to_dict(),
            lookback=f.sizes.lookback,
            epochs_run=len(state.history),
            best_epoch=state.best_epoch + 1,
            fit_seconds=seconds["elman"],
        )
    if args.statistical:
        for name, (fc, sec) in statistical_forecasts(data, args.season).items():
            methods[f"elman {name}"], seconds[f"elman {name}"] = fc, sec
    methods["Naive2"] = naive2_forecasts(data)
    scores, rows = score_rows(data, methods)
    refs = published(args.data) if args.limit is None else []
    table = main_table([r for r in rows if r["group"] == "all"], refs, seconds)
    groups = group_table(rows)
    print(table + "\nBy series length:\n" + groups + detail)
    name = args.name or ("m4_weekly" if args.limit is None else f"m4_weekly_limit{args.limit}")
    report.update(
        argv=sys.argv[1:] if argv is None else list(argv),
        seconds=seconds,
        naive2_check={"smape": s, "mase": m, "ok": ok},
        rows=rows,
        published=refs,
    )
    command = f"`{report['command']}`\n\n" if "command" in report else ""
    text = f"{command}{table}\nBy series length:\n\n{groups}\n{detail}\n"
    path = write_results(name, report, text, args.out)
    csv_path = args.out / f"{name}_series.csv"
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    tmp.write_text(series_csv(data, scores, methods), encoding="utf-8")
    os.replace(tmp, csv_path)
    print(f"wrote {path}, {path.with_suffix('.json')} and {csv_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
