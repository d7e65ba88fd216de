"""Start-up time of the ``elman`` command: how long a call takes that does no work.

Each row runs the installed console script (``.venv/bin/elman`` beside this checkout, or
``elman`` on PATH) in a fresh process and times it from start to exit: ``--help``,
``--version``, ``train --help`` and a mistyped flag (``train --bogus``, which must fail with
exit code 2). It also records which heavy libraries ``import elman`` plus building the
parser loads. Goal: each call under 0.15 s on a 2-core machine.

Results go to ``benchmarks/results/startup.{json,md}`` (``--tag before`` writes
``startup_before``).

Usage::

    python benchmarks/bench_startup.py              # 20 runs per command
    python benchmarks/bench_startup.py --quick      # 5 runs per command
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[1]
CALLS = (
    ("elman --help", ["--help"], 0),
    ("elman --version", ["--version"], 0),
    ("elman train --help", ["train", "--help"], 0),
    ("elman train --bogus", ["train", "--bogus"], 2),
)
HEAVY = ("torch", "pandas", "numpy", "matplotlib")
GOAL_S = 0.15
PROBE = (
    "import sys; from elman.cli import build_parser; build_parser(); "
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def elman_command() -> str:
    """The console script to time: the checkout's .venv first, then PATH."""
    local = ROOT / ".venv" / "bin" / "elman"
    if local.exists():
        return str(local)
    found = shutil.which("elman")
    if found is None:
        sys.exit("bench_startup: no 'elman' command; run 'make venv' first")
    return found


def time_call(cmd: list[str], want_rc: int) -> float:
    """Wall seconds of one run; the exit code must be the expected one."""
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    took = time.perf_counter() - t0
    if rc != want_rc:
        sys.exit(f"bench_startup: {' '.join(cmd)} exited {rc}, expected {want_rc}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 runs per command")
    ap.add_argument("--repeats", type=int, default=None, help="runs per command (default 20)")
    ap.add_argument("--tag", default="", help="suffix of the result files, e.g. 'before'")
    args = ap.parse_args()
    repeats = args.repeats or (5 if args.quick else 20)
    exe = elman_command()
    python = str(Path(exe).with_name("python"))
    loaded = subprocess.run(
        [python, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout.strip()
    rows, report = [], {"machine": machine_info(), "repeats": repeats, "goal_s": GOAL_S}
    report["heavy_modules_loaded"] = loaded.split(",") if loaded else []
    for label, argv, rc in CALLS:
        time_call([exe, *argv], rc)  # warm the file cache
        samples = [time_call([exe, *argv], rc) for _ in range(repeats)]
        med, worst = statistics.median(samples), max(samples)
        report[label] = {"median_s": med, "max_s": worst, "samples": samples}
        rows.append([label, f"{med:.3f}", f"{worst:.3f}", "yes" if med < GOAL_S else "no"])
        print(f"{label:24s} median {med:.3f} s  max {worst:.3f} s", flush=True)
    print(f"heavy modules after import + parser: {loaded or 'none'}")
    table = md_table(["command", "median s", "max s", f"< {GOAL_S} s"], rows)
    table += f"\nHeavy modules loaded by `import elman` + the parser: {loaded or 'none'}.\n"
    name = "startup" + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
    print(write_results(name, report, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
