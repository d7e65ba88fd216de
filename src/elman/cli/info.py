"""``elman info``: what a run or model directory holds, read from its metadata alone."""

from __future__ import annotations

import argparse
import json
from typing import Any

from elman.cli.common import say
from elman.errors import one_line


def add_parser(subs: Any) -> None:
    """Register ``elman info``."""
    p = subs.add_parser(
        "info",
        help="summarise a run or model directory (config, data, metrics) without loading it",
        description="Print the model, data schema, training summary, hold-out metrics and "
        "checkpoint state of DIR, read from its JSON metadata and file headers; the weights "
        "are never loaded. Example: elman info run",
    )
    p.add_argument("directory", metavar="DIR", help="a run directory or a saved model directory")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the summary."""
    from elman.runs.directory import describe

    info = describe(args.directory)
    if args.json:
        say(json.dumps(info, indent=2, sort_keys=True, default=str))
        return 0
    for label, text in lines(info):
        say(f"{label:<12} {one_line(text)}")  # column names may hold control characters
    return 0


def lines(info: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` rows of the human-readable summary."""
    rows = [("path", info["path"])]
    cfg = info.get("config") or {}
    rows.append(("model", _model(info.get("model") or {}, cfg.get("model") or {})))
    if info.get("ensemble"):
        from elman.runs.directory import ensemble_text

        rows.append(("ensemble", ensemble_text(info["ensemble"])))
    sizes = info.get("sizes")
    if sizes:
        from elman.runs.report_text import PADDED

        rows.append(
            (
                "windows",
                f"lookback {sizes.get('lookback')}{PADDED if sizes.get('padded') else ''}, "
                f"horizon {sizes.get('horizon')}, validation {sizes.get('val_size')}, "
                f"season {sizes.get('season')}",
            )
        )
    rows += _data(info.get("data"), cfg.get("data") or {})
    rows += _training(info.get("training"), info.get("holdout"), info.get("checkpoint"), info)
    v = info.get("versions") or {}
    rows.append(
        (
            "written by",
            f"elman {v.get('elman_version')}, torch {v.get('torch_version')} "
            f"({v.get('format')} format {v.get('format_version')})",
        )
    )
    return rows


def _model(model: dict[str, Any], cfg: dict[str, Any]) -> str:
    name = model.get("name") or cfg.get("model", "?")
    hidden = model.get("hidden_size", cfg.get("hidden_size"))
    layers = model.get("num_layers", cfg.get("num_layers"))
    text = f"{name}, hidden {hidden} x {layers} layer(s)"
    if cfg.get("strategy"):
        text += f", {cfg['strategy']} strategy"
    if model.get("parameters") is not None:
        text += f", {model['parameters']:,} parameters"
    names = model.get("categories") or []
    if names:  # an ES-RNN trained with --category
        shown = ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
        text += f", {len(names)} categories ({shown})"
    return text


def _data(data: dict[str, Any] | None, cfg: dict[str, Any]) -> list[tuple[str, str]]:
    if not data:
        return [("data", str(cfg.get("source", "?")))]
    if "n_series" not in data:  # only a checkpoint: the schema is written with the model
        return [("data", str(data.get("source"))), ("fingerprint", str(data.get("fingerprint")))]
    span = f"{data.get('first_timestamp')} .. " if data.get("first_timestamp") else "until "
    rows = [
        (
            "data",
            f"{data.get('source')}: {data.get('n_series')} series, "
            + (f"{data['rows']} rows, " if data.get("rows") is not None else "")
            + f"freq {data.get('freq') or '-'}, {span}{data.get('last_timestamp')}",
        ),
        (
            "columns",
            f"targets {_names(data.get('targets'))}; covariates {_names(data.get('covariates'))}; "
            f"future covariates {_names(data.get('future_covariates'))}",
        ),
    ]
    if data.get("fingerprint"):
        rows.append(("fingerprint", str(data["fingerprint"])))
    return rows


def _names(cols: Any) -> str:
    return ", ".join(map(str, cols)) if cols else "-"


def _training(
    training: dict[str, Any] | None,
    holdout: dict[str, Any] | None,
    ckpt: dict[str, Any] | None,
    info: dict[str, Any],
) -> list[tuple[str, str]]:
    rows = []
    if training:
        early = "yes" if training.get("stopped_early") else "no"
        rows.append(
            (
                "training",
                f"{training.get('epochs_run')} epochs, best validation loss "
                f"{_num(training.get('best_loss'))} at epoch {training.get('best_epoch')}, "
                f"stopped early: {early}",
            )
        )
        from elman.runs.directory import averaging_text

        averaging = averaging_text(training)
        if averaging:
            rows.append(("averaging", averaging))
    if holdout and isinstance(holdout.get("metrics"), dict):
        cells = [f"{name} {_num((m or {}).get('mase'))}" for name, m in holdout["metrics"].items()]
        rows.append(
            ("hold-out", f"MASE on the last {holdout.get('test_size')}: " + ", ".join(cells))
        )
    if ckpt:
        state = (
            "complete"
            if ckpt.get("complete")
            else "interrupted"
            if ckpt.get("interrupted")
            else "in progress or killed"
        )
        text = f"epoch {ckpt.get('epoch')} of {ckpt.get('epochs')} ({state})"
        if not ckpt.get("complete") or not training:
            text += f"; continue with: elman train --resume {info['path']}"
        rows.append(("checkpoint", text))
    return rows


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"
