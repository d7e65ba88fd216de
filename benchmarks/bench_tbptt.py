"""Stateful truncated BPTT against stride-1 windows on a long series: time per epoch and to a loss.

Both train the same model (same seed, same initial weights) on the same long noisy sine
(``--points`` values, period 50, noise 0.1) to predict the next value, and are scored after
every epoch on the same validation windows (the last ``--val`` points, one-step MSE in
scaled units, from a zero state warmed up over ``--lookback`` steps):

* ``windows``: the default batching, every stride-1 window of ``--lookback`` steps, shuffled,
  64 per batch (``strategy="recursive"``, teacher forcing: a loss at every step). Each
  point is run through the network ``lookback`` times per epoch, once in each window that
  holds it, every time from a zero state.
* ``tbptt``: ``TrainConfig.tbptt=k`` (:class:`elman.training.tasks.TbpttTask`): the training part
  is cut into ``--lanes`` contiguous lanes walked forward in chunks of ``k`` steps, and the
  hidden state is carried from chunk to chunk (gradients stop at chunk edges). Each point is
  run once per epoch, and the state has seen the whole past, not only ``lookback`` steps.

Both use ``norm="none"`` (TBPTT carries a state, so there is no window to normalise), no
learning-rate schedule and no early stopping, so that only the batching differs. Each run
stops after ``--budget`` seconds of training (checked at epoch ends) or ``--epochs``.
Reported: seconds per epoch, points run through the network per epoch, the best
validation loss, the loss reached within the budget, and the time to ``--target`` (about
1.25 times the noise floor, 0.01 / 0.51 = 0.0196 in scaled units).
Results: ``benchmarks/results/tbptt.{json,md}``.

Usage::

    python benchmarks/bench_tbptt.py            # 20,000 points, LSTM and GRU, 60 s each
    python benchmarks/bench_tbptt.py --quick    # 4,000 points, LSTM, 20 s each
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

from elman.data.synthetic import noisy_sine
from elman.forecaster import Forecaster
from elman.training.trainer import EpochRecord, Trainer


class Clock:
    """A fit hook that records the validation curve and stops the fit after ``budget`` s."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.elapsed = 0.0  # seconds of training and validation, summed over epochs
        self.curve: list[tuple[int, float, float]] = []  # (epoch, elapsed s, val loss)

    def attach(self, trainer: Trainer, series: Any) -> None:
        trainer.callbacks.append(self.on_epoch)

    def on_epoch(self, trainer: Trainer, rec: EpochRecord) -> None:
        self.elapsed += rec.seconds
        self.curve.append(
            (rec.epoch + 1, self.elapsed, float("nan") if rec.val_loss is None else rec.val_loss)
        )
        if self.elapsed >= self.budget:
            trainer.stop_requested = True  # the loop ends before the next epoch


def method_options(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """Forecaster options of one batching method."""
    if method == "windows":
        return {"batch_size": 64}
    return {"tbptt": args.chunk, "batch_size": args.lanes}


def run(model: str, method: str, y: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Fit one model with one batching method under the time budget."""
    f = Forecaster(
        model, hidden_size=args.hidden, lookback=args.lookback, horizon=1,
        strategy="recursive", norm="none", val_size=args.val, epochs=args.epochs,
        patience=args.epochs + 1, scheduler="none", progress=False, threads=args.threads,
        ensemble="none", **method_options(method, args),
    )  # fmt: skip
    clock = Clock(args.budget)
    t0 = time.perf_counter()
    f.fit(y, hooks=[clock])
    wall = time.perf_counter() - t0
    assert f.train_state is not None
    hist = f.train_state.history
    train_points = len(y) - args.val
    reached = [(e, s) for e, s, v in clock.curve if v <= args.target]
    per_epoch = sum(r.seconds for r in hist) / len(hist)
    return {
        "model": model,
        "method": method,
        "epochs_run": len(hist),
        "seconds_per_epoch": per_epoch,
        # network steps per epoch: every window runs lookback steps; TBPTT runs each point once
        "steps_per_epoch": (train_points - args.lookback) * args.lookback
        if method == "windows"
        else train_points,
        "optimizer_steps_per_epoch": _optimizer_steps(method, train_points, args),
        "best_val_loss": min(v for _, _, v in clock.curve),
        "final_val_loss": clock.curve[-1][2],
        "epochs_to_target": reached[0][0] if reached else None,
        "seconds_to_target": reached[0][1] if reached else None,
        "train_seconds": clock.elapsed,
        "fit_wall_seconds": wall,
        "curve": clock.curve,
    }


def _optimizer_steps(method: str, train_points: int, args: argparse.Namespace) -> int:
    if method == "windows":
        return -(-(train_points - args.lookback) // 64)
    return (train_points // args.lanes - 1) // args.chunk


def table(report: dict[str, Any]) -> str:
    s = report["settings"]
    rows = []
    for r in report["results"]:
        base = next(
            b for b in report["results"] if b["model"] == r["model"] and b["method"] == "windows"
        )
        t, bt = r["seconds_to_target"], base["seconds_to_target"]
        label = "windows" if r["method"] == "windows" else f"tbptt k={s['chunk']}"
        rows.append([
            r["model"], label, f"{r['seconds_per_epoch']:.2f}",
            f"{base['seconds_per_epoch'] / r['seconds_per_epoch']:.1f}x",
            f"{r['steps_per_epoch']:,}", r["optimizer_steps_per_epoch"], r["epochs_run"],
            f"{r['best_val_loss']:.4f}",
            f"{t:.1f} ({r['epochs_to_target']} ep.)" if t is not None else "not reached",
            f"{bt / t:.1f}x" if t is not None and bt is not None else "-",
        ])  # fmt: skip
    head = ["model", "batching", "s / epoch", "epoch speed-up", "network steps / epoch",
            "optimizer steps / epoch", "epochs run", "best val MSE",
            f"s to val MSE <= {s['target']}", "speed-up to target"]  # fmt: skip
    return (
        f"Noisy sine, {s['points']:,} points ({s['val']:,} for validation), hidden size "
        f"{s['hidden']}, one-step loss; windows: lookback {s['lookback']}, batch 64; tbptt: "
        f"{s['lanes']} lanes, chunks of {s['chunk']}; budget {s['budget']} s per run; "
        f"{s['threads'] or 'default'} threads. Load {report['load_before_after']} "
        "(1-minute average before, after).\n\n" + md_table(head, rows)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4,000 points, LSTM, 20 s per run")
    p.add_argument("--models", nargs="+", default=["lstm", "gru"])
    p.add_argument("--points", type=int, default=20_000, help="series length (20,000)")
    p.add_argument("--val", type=int, default=1_000, help="validation points (1,000)")
    p.add_argument("--hidden", type=int, default=32, help="hidden size (32)")
    p.add_argument("--lookback", type=int, default=64, help="window length (64)")
    p.add_argument("--chunk", type=int, default=32, help="TBPTT chunk length k (32)")
    p.add_argument("--lanes", type=int, default=16, help="TBPTT lanes (batch) (16)")
    p.add_argument("--epochs", type=int, default=500, help="epoch cap (500)")
    p.add_argument("--budget", type=float, default=60.0, help="seconds per run (60)")
    p.add_argument("--target", type=float, default=0.025, help="validation MSE goal (0.025)")
    p.add_argument("--threads", type=int, help="torch threads (default: physical cores)")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.points, args.val, args.budget = ["lstm"], 4_000, 500, 20.0
    y = noisy_sine(args.points, noise=0.1, seed=0, period=50.0)
    load0 = machine_info()["load_1min"]
    results = []
    for model in args.models:
        for method in ("windows", "tbptt"):
            r = run(model, method, y, args)
            results.append(r)
            print(f"{model:5s} {method:8s} {r['seconds_per_epoch']:7.2f} s/epoch  best "
                  f"{r['best_val_loss']:.4f}  to target {r['seconds_to_target']}")  # fmt: skip
    keys = ("points", "val", "hidden", "lookback", "chunk", "lanes", "epochs", "budget",
            "target", "threads", "quick")  # fmt: skip
    report = {
        "benchmark": "tbptt",
        "machine": machine_info(),
        "load_before_after": [load0, machine_info()["load_1min"]],
        "settings": {k: getattr(args, k) for k in keys},
        "results": results,
    }
    write_results("tbptt_quick" if args.quick else "tbptt", report, table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
