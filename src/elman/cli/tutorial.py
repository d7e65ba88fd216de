"""``elman tutorial``: the seed system, reproduced exactly."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from elman.cli.common import add_out_options, say, wrote
from elman.config import COMPARE_OPTIMIZERS, TutorialConfig
from elman.files import METRICS, atomic_write_json, prepare_out_dir

if TYPE_CHECKING:
    from elman.tutorial import TutorialResult



def add_parser(subs: Any) -> None:
    """Register ``elman tutorial``."""
    d = TutorialConfig()
    p = subs.add_parser(
        "tutorial",
        help="reproduce the seed: a 6-neuron Elman network learning a sine one point at a time",
        description="Train the seed's Elman network on sin(t), t = linspace(2, 10, 21), one "
        "point at a time, and save an Actual-vs-Predicted plot and a metrics JSON.",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs (default {d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    p.add_argument(
        "--hidden-size",
        type=int,
        default=d.hidden_size,
        help=f"context neurons (default {d.hidden_size})",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also train the same network with full-sequence BPTT and compare",
    )
    p.add_argument(
        "--compare-optimizer",
        choices=COMPARE_OPTIMIZERS,
        default=d.compare_optimizer,
        help=f"optimizer of the --compare run (default {d.compare_optimizer})",
    )
    add_out_options(p, "runs/tutorial", "the plot and metrics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, print the loss every 10 epochs, write the PNG and JSON."""
    from elman.runs.pictures import plot_tutorial
    from elman.tutorial import run_tutorial

    cfg = TutorialConfig(
        seed=args.seed,
        epochs=args.epochs,
        lr=args.lr,
        hidden_size=args.hidden_size,
        compare=args.compare,
        compare_optimizer=args.compare_optimizer,
    )
    out = prepare_out_dir(args.out, args.overwrite)
    result = run_tutorial(cfg, on_epoch=lambda e, loss: say(f"Epoch: {e} loss {loss}"))
    _print_summary(result)
    preds = {"Predicted": result.seed_run.predictions}
    if result.modern_run is not None:
        preds[f"Predicted (full BPTT, {cfg.compare_optimizer})"] = result.modern_run.predictions
    png = plot_tutorial(result.t, result.x, preds, out / "tutorial.png")
    metrics = out / METRICS
    atomic_write_json(metrics, result.metrics())
    wrote([png, metrics])
    return 0


def _print_summary(r: TutorialResult) -> None:
    rows: list[tuple[str, ...]] = [("", "seed (online SGD)")]
    runs = [r.seed_run]
    if r.modern_run is not None:
        rows[0] = (*rows[0], f"full BPTT ({r.config.compare_optimizer})")
        runs.append(r.modern_run)
    rows.append(("one-step MSE", *(f"{x.one_step_mse:.6f}" for x in runs)))
    rows.append(("naive MSE", *(f"{r.naive_mse:.6f}" for _ in runs)))
    rows.append(("wall time s", *(f"{x.wall_time_s:.3f}" for x in runs)))
    rows.append(("steps (points or optimizer)", *(str(x.steps) for x in runs)))
    if r.modern_run is not None:
        hit = r.modern_run.time_to_target_s
        target = f"<= {r.config.compare_target:g}"
        rows.append((f"time to MSE {target} s", "-", f"{hit:.3f}" if hit is not None else "never"))
    width = max(len(row[0]) for row in rows)
    for row in rows:
        say("  ".join([row[0].ljust(width), *(c.rjust(22) for c in row[1:])]))
