"""``elman stream``: predict each point before it arrives, score it, learn from it."""

from __future__ import annotations

import argparse
from typing import Any

from elman.cli.common import stderr
from elman.config import MODEL_NAMES, SERIES_MODEL_NAMES, OnlineConfig


def add_parser(subs: Any) -> None:
    """Register ``elman stream``."""
    p = subs.add_parser(
        "stream",
        help="learn online from a stream: predict each point, flag anomalies, keep learning",
        description="Read values as they arrive (one number per line, or CSV rows with a "
        "header) and, for each point, write the prediction made before it, the error, the "
        "running MAE and an anomaly flag; then learn from the point. State is checkpointed, "
        "and the same command resumes after a crash. Example: tail -n +1 -f data.csv | "
        "elman stream --model-type lstm --input - --output out.csv",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="DIR", help="a model directory from 'elman train'")
    fresh = [m for m in MODEL_NAMES if m not in SERIES_MODEL_NAMES]  # window networks only
    which.add_argument("--model-type", choices=fresh, help="start a fresh network")
    p.add_argument(
        "--network-only",
        action="store_true",
        help="--model is an ensemble (--ensemble): learn and predict with its network member "
        "alone (ETS, Theta and naive are refitted to histories, not learned online)",
    )
    _input_options(p)
    _model_options(p)
    _learning_options(p)
    p.set_defaults(func=run)


def _input_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input and output")
    g.add_argument("--input", required=True, metavar="FILE", help="a file, or - for stdin")
    g.add_argument(
        "--follow",
        action="store_true",
        help="at the end of the file, wait for more lines (like tail -f)",
    )
    g.add_argument("--output", metavar="FILE", help="rows go here (default: stdout)")
    g.add_argument(
        "--format",
        dest="fmt",
        choices=("csv", "jsonl"),
        help="output format (default: jsonl for .jsonl/.ndjson files, else csv)",
    )
    g.add_argument(
        "--state",
        metavar="DIR",
        help="checkpoint directory (default: OUTPUT.state; none for stdout)",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=1000,
        metavar="N",
        help="points between checkpoints (default: 1000)",
    )
    g.add_argument(
        "--on-bad",
        choices=("skip", "error"),
        default="skip",
        help="non-numeric, missing or non-finite values, or time going backwards: "
        "skip them with a warning, or stop (default: skip)",
    )
    g.add_argument("--target", metavar="COL", help="CSV input: the value column")
    g.add_argument(
        "--time-col", metavar="COL", help="CSV input: the time column (default: found by its name)"
    )
    g.add_argument(
        "--decimal", default=".", metavar="C",
        help="decimal mark of the values, e.g. ',' for 1502,51 (default: .)",
    )  # fmt: skip
    g.add_argument(
        "--thousands", metavar="C",
        help="thousands separator of the values, e.g. ',' for 1,502.5",
    )  # fmt: skip
    g.add_argument(
        "--dayfirst", action="store_true",
        help="read ambiguous dates such as 01/02/2023 day first (1 February)",
    )  # fmt: skip
    g.add_argument(
        "--date-format", metavar="FMT", help="format of the time column's dates, e.g. %%d/%%m/%%Y"
    )
    g.add_argument(
        "--poll",
        type=float,
        default=0.2,
        metavar="S",
        help="--follow: seconds between looks at the file (default: 0.2)",
    )
    g.add_argument("--overwrite", action="store_true",
                   help="start over, replacing the output and the checkpoint")  # fmt: skip


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fresh network (--model-type)")
    g.add_argument("--hidden-size", type=int, default=32, help="hidden units (default: 32)")
    g.add_argument("--num-layers", type=int, default=1, help="stacked layers (default: 1)")
    g.add_argument("--seed", type=int, default=0, help="weight initialisation (default: 0)")
    g.add_argument(
        "--difference",
        action="store_true",
        help="learn the change from one point to the next (for a series with a trend)",
    )
    g.add_argument(
        "--warmup",
        type=int,
        default=32,
        metavar="N",
        help="first N points fit the scaler; no predictions for them (default: 32)",
    )
    g.add_argument("--threads", type=int, default=1,
                   help="torch threads (default: 1, fastest for one point at a time)")  # fmt: skip


def _learning_options(p: argparse.ArgumentParser) -> None:
    d = OnlineConfig()
    g = p.add_argument_group("online learning and scoring")
    g.add_argument(
        "--tbptt",
        type=int,
        default=d.tbptt,
        metavar="K",
        help=f"steps back-propagated behind each trained point (default: {d.tbptt})",
    )
    g.add_argument(
        "--update-every",
        type=int,
        default=d.update_every,
        metavar="U",
        help=f"one optimizer step per U points (default: {d.update_every})",
    )
    g.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default=d.optimizer,
        help=f"online optimizer (default: {d.optimizer})",
    )
    g.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default: {d.lr})")
    g.add_argument(
        "--clip",
        type=float,
        default=d.clip,
        help=f"gradient-norm clipping, 0 disables it (default: {d.clip})",
    )
    g.add_argument("--no-learn", action="store_true", help="predict and score only")
    g.add_argument(
        "--anomaly-threshold",
        type=float,
        default=d.anomaly_threshold,
        metavar="T",
        help="flag a point whose |error| exceeds T x the running MAE "
        f"(default: {d.anomaly_threshold})",
    )
    g.add_argument(
        "--metric-span",
        type=int,
        default=d.metric_span,
        metavar="N",
        help=f"span of the running MAE (default: {d.metric_span})",
    )
    g.add_argument("--min-errors", type=int, default=d.min_errors, metavar="N",
                   help=f"no anomaly flags before N errors (default: {d.min_errors})")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Build the options, stream, report."""
    from elman.online.stream import ModelSpec, StreamOptions, run_stream
    from elman.runtime import configure_threads

    configure_threads(args.threads)
    spec = ModelSpec(
        model_dir=args.model, model_type=args.model_type, hidden_size=args.hidden_size,
        num_layers=args.num_layers, seed=args.seed, difference=args.difference,
        network_only=args.network_only,
    )  # fmt: skip
    online = OnlineConfig(
        tbptt=args.tbptt, update_every=args.update_every, optimizer=args.optimizer,
        lr=args.lr, clip=args.clip, anomaly_threshold=args.anomaly_threshold,
        metric_span=args.metric_span, min_errors=args.min_errors, learn=not args.no_learn,
    )  # fmt: skip
    opts = StreamOptions(
        input=args.input, output=args.output, state=args.state, follow=args.follow,
        fmt=args.fmt, on_bad=args.on_bad, target=args.target, time_col=args.time_col,
        checkpoint_every=args.checkpoint_every, warmup=args.warmup, poll=args.poll,
        overwrite=args.overwrite, decimal=args.decimal, thousands=args.thousands,
        dayfirst=args.dayfirst, date_format=args.date_format,
    )  # fmt: skip
    stats = run_stream(spec, online, opts, warn=lambda m: stderr(f"elman: warning: {m}"))
    stderr(_summary(stats))
    return 0


def _summary(s: dict[str, Any]) -> str:
    parts = [f"{s['points']} points"]
    if s.get("resumed_from") is not None:
        parts.append(f"resumed after point {s['resumed_from']}")
    parts.append(f"{s['bad_points']} bad skipped")
    if s.get("anomalies") is not None:
        parts.append(f"{s['anomalies']} anomalies")
    if s.get("updates") is not None:
        parts.append(f"{s['updates']} updates")
    mae = s.get("running_mae")
    text = "elman: streamed " + ", ".join(parts)
    if mae is not None:
        text += f"; running MAE {mae:.4g}"
    if s.get("warmup_left"):
        text += f"; still warming up ({s['warmup_left']} points to go)"
    if s.get("state"):
        text += f"; state in {s['state']}"
    return text
