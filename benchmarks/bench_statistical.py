"""The cost of the ETS and Theta baselines: first call in a fresh process, then per fit.

Each measurement runs in a new Python process, as ``elman train`` would: the import of
statsforecast, the first AutoETS and AutoTheta forecasts (numba loads or compiles its
kernels then), and a second call on the same series. Then the hold-out fit of each shipped
dataset (one fit per series and target, as ``elman train`` does). Wall and CPU seconds are
both given: on a shared machine the CPU seconds are the steadier figure.

Writes benchmarks/results/statistical.{json,md}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

SRC = Path(__file__).resolve().parents[1] / "src"

FIRST_CALL = """
import json, sys, time
sys.path.insert(0, {src!r})
clock = lambda: (time.perf_counter(), time.process_time())
out = {{}}
import numpy as np
from elman.data.prepare import load_series
from elman.config import DataConfig
y = load_series("builtin:airline", DataConfig())[0].target_values[:, 0]
from elman.evaluation import baselines
t = clock(); import statsforecast.models
out["import"] = [a - b for a, b in zip(clock(), t)]
for name in ("ets", "theta"):
    for call in ("first", "second"):
        t = clock(); baselines.BASELINES[name].forecast(y[:-12], 12, 12)
        out[f"{{name}} {{call}}"] = [a - b for a, b in zip(clock(), t)]
print(json.dumps(out))
"""

HOLDOUT = """
import json, sys, time
sys.path.insert(0, {src!r})
from elman.config import DataConfig
from elman.data.prepare import load_series
from elman.evaluation.baselines import BASELINES
series = load_series("builtin:{name}", DataConfig(**{opts!r}))
BASELINES["ets"].forecast(series[0].target_values[:40], 2, 1)  # import and warm-up
BASELINES["theta"].forecast(series[0].target_values[:40], 2, 1)
out = {{"series": len(series), "length": len(series[0]), "season": int(series[0].season or 1)}}
for name in ("ets", "theta"):
    t0, c0 = time.perf_counter(), time.process_time()
    for s in series:
        BASELINES[name].forecast(s.target_values[: len(s) - {h}], {h}, int(s.season or 1))
    out[name] = [time.perf_counter() - t0, time.process_time() - c0]
print(json.dumps(out))
"""

DATASETS = {  # as bench_datasets.py: horizon, data options
    "airline": (12, {}),
    "co2": (52, {"missing": "interpolate"}),
    "sunspots": (11, {}),
    "nile": (10, {}),
    "us_macro": (8, {}),
}


def fresh(code: str, env: dict[str, str] | None = None) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=None if env is None else {**os.environ, **env},
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    report: dict = {"machine": machine_info()}
    first = fresh(FIRST_CALL.format(src=str(SRC)))
    with tempfile.TemporaryDirectory() as empty:  # no cached numba kernels: compile them
        cold = fresh(FIRST_CALL.format(src=str(SRC)), {"NUMBA_CACHE_DIR": empty})
    report["first_call"], report["first_call_cold_numba_cache"] = first, cold
    rows = [
        [k, f"{w:.2f}", f"{c:.2f}", f"{cold[k][0]:.2f}", f"{cold[k][1]:.2f}"]
        for k, (w, c) in first.items()
    ]
    table = "Fresh process, airline (144 points, season 12):\n\n"
    table += md_table(
        ["step", "wall s", "CPU s", "wall s, empty numba cache", "CPU s, empty numba cache"], rows
    )
    report["holdout"] = {}
    rows = []
    print(table, flush=True)
    for name, (h, opts) in DATASETS.items():
        r = fresh(HOLDOUT.format(src=str(SRC), name=name, opts=opts, h=h))
        report["holdout"][name] = r
        rows.append(
            [name, r["series"], r["length"], r["season"], h]
            + [f"{r[m][i]:.2f}" for m in ("ets", "theta") for i in (0, 1)]
        )
        print(rows[-1], flush=True)
    table += "\nHold-out fits (after the warm-up), all series of each dataset:\n\n"
    table += md_table(
        ["dataset", "series", "length", "season", "H", "ETS wall s", "ETS CPU s",
         "Theta wall s", "Theta CPU s"],
        rows,
    )  # fmt: skip
    print(table)
    print(write_results("statistical", report, table))


if __name__ == "__main__":
    main()
