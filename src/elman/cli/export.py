"""``elman export``: write a saved model as ONNX graphs that forecast without elman."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from elman.cli.common import say, wrote
from elman.config import DEFAULT_OPSET
from elman.errors import ConfigError

FORMATS = ("onnx",)


def add_parser(subs: Any) -> None:
    """Register ``elman export``."""
    p = subs.add_parser(
        "export",
        help="export a saved model to ONNX (forecasts with onnxruntime alone)",
        description="Write the model in RUN_DIR as two ONNX graphs: --output (the whole "
        "forecast, real units in and out, scaler inside) and NAME.step.onnx (one step with "
        "its state, for streaming). Metadata records lookback, horizon, frequency, columns "
        "and scaler. Example: elman export run --format onnx --output model.onnx",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'elman train'")
    p.add_argument("--format", default="onnx", help="export format (only 'onnx')")
    p.add_argument(
        "--output",
        metavar="FILE.onnx",
        help="the sequence graph goes here (default: RUN_DIR/model.onnx)",
    )
    p.add_argument(
        "--horizon",
        type=int,
        help="forecast steps of the graph (default: the trained horizon; recursive models "
        "may go further)",
    )
    p.add_argument("--no-step", action="store_true", help="do not write the step graph")
    p.add_argument(
        "--network-only",
        action="store_true",
        help="for an ensemble (--ensemble): export its network member alone, whose forecasts "
        "leave out the statistical members (ETS, Theta, naive have no graph)",
    )
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    p.add_argument(
        "--dynamo",
        action="store_true",
        help="use the torch.export-based exporter (slower to export, same results)",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the graphs with onnxruntime against PyTorch",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, export, report parity."""
    from elman.export.onnx import check_export, check_export_horizon
    from elman.forecaster import Forecaster

    if args.format not in FORMATS:
        raise ConfigError(
            f"--format '{args.format}' is not supported; use --format onnx "
            "(run the ONNX file with onnxruntime, or convert it with ONNX tools)"
        )
    f = Forecaster.load(args.run_dir)
    if args.network_only and f.ensemble is not None:
        weight = f.ensemble.weights.get("network", 0.0)
        say(f"exporting the network member of the ensemble (weight {weight:.2f}): the graphs "
            "forecast as the network alone, without the statistical members")  # fmt: skip
        f = f.network_member()
    paths = f.export_onnx(
        args.output or Path(args.run_dir) / "model.onnx",
        horizon=args.horizon,
        step=not args.no_step,
        overwrite=args.overwrite,
        check=False,
        opset=args.opset,
        dynamo=args.dynamo,
    )
    if not args.no_check:
        diffs = check_export(f, paths, check_export_horizon(f, args.horizon))
        if diffs:
            text = ", ".join(f"{graph} {d:.2g}" for graph, d in diffs.items())
            say(f"onnxruntime vs PyTorch, max abs difference (scaled units): {text}")
        else:
            say("onnxruntime is not installed: the graphs were not checked")
    wrote(paths)
    return 0
