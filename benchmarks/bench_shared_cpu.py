"""Training speed on a shared machine: alone, and beside other CPU-bound processes.

One fixed training (a panel of ``--series`` x ``--length`` points, horizon 48, season 24,
one epoch of ``--max-batches`` batches) runs with ``elman train`` in a fresh process:

- ``alone``: nothing else runs;
- ``busy``: beside a single-threaded busy loop (``python3 -c "while True: pass"``);
- ``train``: beside a second ``elman train`` of the same shape, started first;
- ``torch``: beside a plain PyTorch training loop (an LSTM, torch's default threads).

Each is measured with the compiled step loops on and off (``ELMAN_NO_NATIVE=1``) and with
``--threads`` 1 and 2 (or the default). The figure is the training throughput that the
run's own ``history.csv`` records (windows per second of the epoch, validation included),
and its ratio to the quiet figure of the same settings: a fair share of two cores beside
one other CPU-bound process is 50%.

``--env KEY=VALUE`` (repeatable) sets extra environment variables for the measured run
only, for experiments with the OpenMP settings (for example ``GOMP_SPINCOUNT``).

Results: ``benchmarks/results/shared_cpu.{json,md}`` (``--name`` changes the name).

Usage::

    python benchmarks/bench_shared_cpu.py                       # the whole table
    python benchmarks/bench_shared_cpu.py --modes alone busy --native on --threads 2
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine_info, write_results

ROOT = Path(__file__).resolve().parents[1]
MODES = ("alone", "busy", "train", "torch")
BUSY = "while True: pass"
TORCH_LOOP = """
import torch
torch.manual_seed(0)
net = torch.nn.LSTM(8, 64, batch_first=True)
head = torch.nn.Linear(64, 1)
opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=1e-3)
x = torch.randn(64, 96, 8)
y = torch.randn(64, 1)
while True:
    opt.zero_grad()
    out, _ = net(x)
    loss = ((head(out[:, -1]) - y) ** 2).mean()
    loss.backward()
    opt.step()
"""
WARMUP_S = 3.0  # the competitor's start-up (imports) before the measured run starts


def elman_cmd() -> list[str]:
    return [sys.executable, "-m", "elman"]


def write_panel(path: Path, n_series: int, length: int) -> None:
    """The synthetic long-format panel (elman's own generator) as CSV."""
    sys.path.insert(0, str(ROOT / "src"))
    from elman.data.synthetic import many_series

    many_series(n_series=n_series, length=length, period=24).to_csv(path, index=False)


def train_args(data: Path, out: Path, max_batches: int, epochs: int = 1) -> list[str]:
    return [
        "train", "--data", str(data), "--series-id", "series", "--time-col", "t",
        "--target", "value", "--horizon", "48", "--season", "24", "--epochs", str(epochs),
        "--max-batches", str(max_batches), "--out", str(out), "--overwrite",
        "--no-progress-bar", "--test-size", "0",  # training only: no hold-out, no baselines
        "--ensemble", "none",  # and no statistical members
    ]  # fmt: skip


def competitor(
    mode: str, data: Path, work: Path, env: dict[str, str]
) -> subprocess.Popen[bytes] | None:
    """Start the process the measured run shares the machine with (a second elman train
    gets the measured run's environment; the others run as they would anyway)."""
    if mode == "alone":
        return None
    if mode == "busy":
        cmd = [sys.executable, "-c", BUSY]
    elif mode == "torch":
        cmd = [sys.executable, "-c", TORCH_LOOP]
    else:  # a long elman train of the same shape, with its default settings
        cmd = elman_cmd() + train_args(data, work / "other", max_batches=1_000_000, epochs=1000)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env if mode == "train" else None,
    )
    time.sleep(WARMUP_S)
    return proc


def measure(
    mode: str, native: bool, threads: int | None, data: Path, work: Path, args: Any
) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("ELMAN_NO_NATIVE", None)
    if not native:
        env["ELMAN_NO_NATIVE"] = "1"
    env.update(dict(kv.split("=", 1) for kv in args.env))
    out = work / "run"
    cmd = elman_cmd() + train_args(data, out, args.max_batches)
    if threads:
        cmd += ["--threads", str(threads)]
    other = competitor(mode, data, work, env)
    try:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        return {"mode": mode, "native": native, "threads": threads, "error": "timeout"}
    finally:
        if other is not None:
            other.kill()
            other.wait()
    if done.returncode != 0:
        raise SystemExit(f"elman train failed: {done.stderr.strip().splitlines()[-1:]}")
    with open(out / "history.csv", encoding="utf-8") as fh:
        row = list(csv.DictReader(fh))[-1]
    return {
        "mode": mode,
        "native": native,
        "threads": threads,
        "epoch_s": float(row["seconds"]),
        "windows_per_s": float(row["samples_per_s"]),
        "wall_s": wall,
    }


def table(rows: list[dict[str, Any]]) -> str:
    quiet = {
        (r["native"], r["threads"]): r["windows_per_s"]
        for r in rows
        if r["mode"] == "alone" and "error" not in r
    }
    lines = [
        "| beside | compiled loops | threads | epoch s | windows/s | of quiet |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        threads = r["threads"] or "default"
        loops = "on" if r["native"] else "off"
        if "error" in r:
            lines.append(f"| {r['mode']} | {loops} | {threads} | {r['error']} | | |")
            continue
        base = quiet.get((r["native"], r["threads"]))
        share = f"{100 * r['windows_per_s'] / base:.0f}%" if base else "-"
        lines.append(
            f"| {r['mode']} | {loops} | {threads} | {r['epoch_s']:.1f} | "
            f"{r['windows_per_s']:,.0f} | {share} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--native", nargs="+", choices=("on", "off"), default=["on", "off"])
    p.add_argument("--threads", nargs="+", default=["1", "2"], help="thread counts, or default")
    p.add_argument("--series", type=int, default=100)
    p.add_argument("--length", type=int, default=1000)
    p.add_argument("--max-batches", type=int, default=300)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per measured run")
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the measured run")
    p.add_argument("--name", default="shared_cpu")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "panel.csv"
        write_panel(data, args.series, args.length)
        for native in (n == "on" for n in args.native):
            for t in args.threads:
                threads = None if t == "default" else int(t)
                for mode in args.modes:
                    r = measure(mode, native, threads, data, work, args)
                    rows.append(r)
                    print(r, flush=True)
    text = table(rows)
    print(text)
    report = {"machine": machine_info(), "env": args.env, "rows": rows, "args": vars(args)}
    write_results(args.name, report, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
