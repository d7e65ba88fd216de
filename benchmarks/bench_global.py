"""Global training on many series, end to end, with the default settings.

Two panels, each fitted as one global model with ``Forecaster`` defaults (only the
columns, horizon and season given), in a fresh child process per case:

- ``synthetic``: 400 series x 1,000 points (elman's ``many_series`` generator, season 24),
  written to a long-format CSV and read back by elman's reader, horizon 48; the last 48
  points of each series are held out;
- ``m4_weekly``: the 359 M4 Weekly series from ``../shared/data/m4_weekly/`` (80 to 2,597
  points), horizon 13, season 52, scored on the published test values.

Each row reports the time to read the CSV, the fit time, the optimizer steps and epochs
the fit ran (the budget of decision 37), training windows per second and window-steps per
second (windows x lookback) end to end, beside a bare training loop's figure for the same
model and batch shape (forward, backward and Adam on one fixed batch: what the kernels
give without the data pipeline), the peak resident memory, and accuracy: the mean over
series of MASE (scale: in-sample seasonal-naive error, lag = the season) for the model and
for the seasonal-naive forecast itself, so that speed is never read without accuracy.

Results: ``benchmarks/results/global.{json,md}``.

Usage::

    python benchmarks/bench_global.py                    # both cases
    python benchmarks/bench_global.py --cases synthetic  # one
    python benchmarks/bench_global.py --series 100       # a smaller synthetic panel
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
M4_DIR = ROOT.parent / "shared" / "data" / "m4_weekly"
CASES = ("synthetic", "m4_weekly")


def peak_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def m4_frames(directory: Path) -> tuple[Any, dict[str, Any]]:
    """M4 Weekly as a long training table and the test values per series id."""
    import numpy as np
    import pandas as pd

    def rows(name: str) -> dict[str, Any]:
        with gzip.open(directory / name, "rt", encoding="utf-8") as fh:
            wide = pd.read_csv(fh)
        ids = wide.iloc[:, 0].astype(str)
        values = wide.iloc[:, 1:].to_numpy(dtype=np.float64)
        return {i: v[~np.isnan(v)] for i, v in zip(ids, values, strict=True)}

    train, test = rows("Weekly-train.csv.gz"), rows("Weekly-test.csv.gz")
    frame = pd.DataFrame(
        {
            "series": np.repeat(list(train), [len(v) for v in train.values()]),
            "t": np.concatenate([np.arange(len(v)) for v in train.values()]),
            "value": np.concatenate(list(train.values())),
        }
    )
    return frame, test


def bare_loop_rate(model: Any, lookback: int, input_size: int, batch: int) -> float:
    """Windows per second of forward + backward + Adam on one fixed batch."""
    import torch

    model = model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, lookback, input_size)
    for step in range(40):
        if step == 10:
            t0 = time.perf_counter()
        opt.zero_grad()
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        out.float().pow(2).mean().backward()
        opt.step()
    return 30 * batch / (time.perf_counter() - t0)


def child(case: str, series: int, length: int, work: Path) -> dict[str, Any]:
    import numpy as np

    from elman import Forecaster
    from elman.data.prepare import load_series
    from elman.data.synthetic import many_series
    from elman.evaluation.baselines import seasonal_naive
    from elman.evaluation.metrics import mase

    if case == "synthetic":
        horizon, season = 48, 24
        path = work / "panel.csv"
        many_series(n_series=series, length=length, period=season, seed=0).to_csv(
            path, index=False
        )
    else:
        horizon, season = 13, 52
        frame, test = m4_frames(M4_DIR)
        path = work / "m4.csv"
        frame.to_csv(path, index=False)
    f = Forecaster(
        horizon=horizon, season=season, target="value", series_id="series", time_col="t",
        progress=False, ensemble="none",  # the network's training cost, as measured
    )  # fmt: skip
    t0 = time.perf_counter()
    loaded = load_series(str(path), f.config.data)
    read_s = time.perf_counter() - t0
    if case == "synthetic":
        train = [s.slice(0, len(s) - horizon) for s in loaded]
        actual = {str(s.series_id): s.target_values[-horizon:, 0] for s in loaded}
    else:
        train = loaded
        actual = {k: v[:horizon] for k, v in test.items()}
    t0 = time.perf_counter()
    f.fit(train)
    fit_s = time.perf_counter() - t0
    preds = f.forecast_arrays(train, horizon)[:, :, 0]  # [S, H]
    model_mase, snaive_mase = [], []
    for s, p in zip(train, preds, strict=True):
        hist = s.target_values[:, 0]
        y = actual[str(s.series_id)]
        m = season if len(hist) > season else 1
        model_mase.append(mase(y, p, hist, m))
        snaive_mase.append(mase(y, seasonal_naive(hist, horizon, m), hist, m))
    st = f.train_state
    assert st is not None and f.sizes is not None and f.layout is not None
    hist_rows = [r for r in st.history if r.seconds > 0]
    windows_s = sum(r.samples_per_s * r.seconds for r in hist_rows) / sum(
        r.seconds for r in hist_rows
    )
    lookback = f.sizes.lookback
    rate = bare_loop_rate(
        f.predictor.model, lookback, f.layout.input_size, f.config.train.batch_size
    )
    return {
        "case": case,
        "series": len(train),
        "rows": int(sum(len(s) for s in loaded)),
        "horizon": horizon,
        "season": season,
        "lookback": lookback,
        "read_s": read_s,
        "fit_s": fit_s,
        "steps": st.steps,
        "epochs": len(st.history),
        "stopped": "budget" if st.budget_spent else "early" if st.stopped_early else "epochs",
        "windows_per_s": windows_s,
        "window_steps_per_s": windows_s * lookback,
        "bare_windows_per_s": rate,
        "threads": [r.threads for r in st.history],
        "peak_mib": peak_mib(),
        "mase_model": float(np.nanmean(model_mase)),
        "mase_seasonal_naive": float(np.nanmean(snaive_mase)),
        "model": f.config.model.model,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | series | rows | read s | fit s | steps (epochs, end) | windows/s | "
        "window-steps/s | bare loop windows/s | peak MiB | MASE model | MASE s-naive |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['series']} | {r['rows']:,} | {r['read_s']:.1f} | "
            f"{r['fit_s']:.0f} | {r['steps']:,} ({r['epochs']}, {r['stopped']}) | "
            f"{r['windows_per_s']:,.0f} | {r['window_steps_per_s']:,.0f} | "
            f"{r['bare_windows_per_s']:,.0f} | {r['peak_mib']:,.0f} | {r['mase_model']:.3f} | "
            f"{r['mase_seasonal_naive']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--series", type=int, default=400)
    p.add_argument("--length", type=int, default=1000)
    p.add_argument("--name", default="global")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(ROOT / "src"))
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(child(args.child, args.series, args.length, Path(tmp))))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine_info, write_results

    rows = []
    for case in args.cases:
        cmd = [sys.executable, __file__, "--child", case, "--series", str(args.series)]
        cmd += ["--length", str(args.length)]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{case} failed:\n{out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        print(row, flush=True)
    text = table(rows)
    print(text)
    write_results(args.name, {"machine": machine_info(), "rows": rows}, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
