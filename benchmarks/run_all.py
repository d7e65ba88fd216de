"""Run every benchmark script in sequence (``make bench``), each in its own process.

Every ``benchmarks/bench_*.py`` runs in name order, then ``gpu_bench.py`` when torch sees a
CUDA GPU. With ``--quick`` each gets its own smoke-run flag (``--quick``, or the arguments
in ``QUICK_ARGS`` for a script without one). A failing script does not stop the others; the
exit code is 1 if any failed. Each script writes its own ``benchmarks/results/NAME.{json,md}``
(most write ``NAME_quick`` files with ``--quick``, leaving the full results alone); this
runner writes ``results/run_all.json`` (``run_all_quick.json``): what ran, for how long, and
its exit code.

Usage::

    python benchmarks/run_all.py                   # everything, full settings
    python benchmarks/run_all.py --quick           # smoke runs
    python benchmarks/run_all.py --only seed memory --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_ARGS = {"bench_datasets": ["--datasets", "nile"]}  # scripts without --quick
THREADS_FLAG = {  # scripts that take --threads N
    "bench_seed", "bench_tbptt", "bench_memory", "bench_precision", "bench_throughput",
}  # fmt: skip


def scripts() -> list[Path]:
    """The benchmark scripts, in the order they run."""
    found = sorted(HERE.glob("bench_*.py"))
    if _has_cuda():
        found.append(HERE / "gpu_bench.py")
    return found


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def arguments(script: Path, quick: bool, threads: int | None) -> list[str]:
    """Command-line arguments for one script."""
    name = script.stem
    args: list[str] = []
    if quick:
        takes_quick = '"--quick"' in script.read_text(encoding="utf-8")
        args += ["--quick"] if takes_quick else QUICK_ARGS.get(name, [])
    if threads and name in THREADS_FLAG:
        args += ["--threads", str(threads)]
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke runs of every script")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run these (e.g. seed memory)")
    p.add_argument("--skip", nargs="+", metavar="NAME", default=[], help="leave these out")
    p.add_argument("--threads", type=int, help="pass --threads N to the scripts that take it")
    args = p.parse_args(argv)
    todo = scripts()
    short = {s: s.stem.removeprefix("bench_") for s in todo}
    if args.only:
        todo = [s for s in todo if short[s] in args.only or s.stem in args.only]
    todo = [s for s in todo if short[s] not in args.skip and s.stem not in args.skip]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = []
    for script in todo:
        cmd = [sys.executable, str(script), *arguments(script, args.quick, args.threads)]
        print(f"== {' '.join([script.name, *cmd[2:]])}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE.parent, env=env)
        seconds = time.perf_counter() - t0
        runs.append({"script": script.name, "args": cmd[2:], "exit_code": code,
                     "seconds": round(seconds, 1)})  # fmt: skip
        print(f"== {script.name}: exit {code} after {seconds:.0f} s", flush=True)
    out = HERE / "results" / ("run_all_quick.json" if args.quick else "run_all.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"quick": args.quick, "runs": runs}, indent=2) + "\n")
    os.replace(tmp, out)
    failed = [r["script"] for r in runs if r["exit_code"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
