"""Run directories: everything one ``elman train`` produced, in one place.

::

    RUN/
      config.toml        resolved configuration; `elman train --config RUN/config.toml` reruns it
      model.safetensors  weights (+ the tail of each series, to forecast without data)
      model.json         metadata: versions, configs, scalers, data schema and fingerprint,
                         metrics
      metrics.json       hold-out metrics of the model and every baseline
      history.csv        per-epoch train / validation loss, learning rate, speed
      holdout.csv        the hold-out forecasts of the model and baselines beside the actuals
      checkpoint/        state.safetensors: the latest training checkpoint (elman.training.resume)
      tensorboard/       TensorBoard event files, only when tensorboard is installed

``config.toml`` is written before training starts and ``history.csv`` after every epoch,
so a run that is still going (or was killed) already says what it is and how far it got.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from elman.checkpoint import (
    META_DIGEST_KEY,
    check_seal,
    decode_state,
    read_checkpoint_doc,
    read_header,
    read_meta,
)
from elman.data.series import Series
from elman.errors import CheckpointError
from elman.evaluation.holdout import HoldoutResult
from elman.files import (
    ACTUALS,
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    FORECASTS_CSV,
    HISTORY,
    HOLDOUT,
    META,
    METRICS,
    TENSORBOARD,
    WEIGHTS,
    atomic_write_json,
    atomic_write_text,
)
from elman.training.resume import data_fingerprint
from elman.training.trainer import EpochRecord, Trainer

log = logging.getLogger(__name__)


def data_schema(series: Sequence[Series], fingerprint: str | None = None) -> dict[str, Any]:
    """What the data looked like: columns and roles, frequency, lengths, time span, hash.

    ``fingerprint`` is :func:`elman.training.resume.data_fingerprint` of ``series`` (computed when
    not given).
    """
    first = series[0]
    lengths = [len(s) for s in series]
    return {
        "source": first.source,
        "columns": first.columns,
        "targets": first.targets,
        "covariates": first.covariates,
        "future_covariates": first.future_covariates,
        "freq": first.freq,
        "season": first.season,
        "n_series": len(series),
        "rows": sum(lengths),
        "min_length": min(lengths),
        "max_length": max(lengths),
        "first_timestamp": str(min(s.index[0] for s in series)),
        "last_timestamp": str(max(s.index[-1] for s in series)),
        "fingerprint": fingerprint or data_fingerprint(series),
    }


class RunLogger:
    """A fit hook that keeps ``history.csv`` current after every epoch, and writes TensorBoard
    scalars (train/val loss, learning rate) when ``torch.utils.tensorboard`` can be imported.
    Without tensorboard it writes no TensorBoard files and logs that once.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.writer: Any = None

    def attach(self, trainer: Trainer, series: list[Series]) -> None:
        """Register the per-epoch and end-of-training callbacks."""
        self.writer = open_tensorboard(self.out / TENSORBOARD)
        trainer.callbacks.append(self._on_epoch)
        trainer.end_callbacks.append(self._on_end)

    def _on_epoch(self, trainer: Trainer, rec: EpochRecord) -> None:
        write_history(self.out / HISTORY, trainer.state.history)
        if self.writer is not None:
            step = rec.epoch + 1
            self.writer.add_scalar("loss/train", rec.train_loss, step)
            if rec.val_loss is not None:
                self.writer.add_scalar("loss/val", rec.val_loss, step)
            self.writer.add_scalar("lr", rec.lr, step)

    def _on_end(self, trainer: Trainer) -> None:
        write_history(self.out / HISTORY, trainer.state.history)
        if self.writer is not None:
            self.writer.close()


def describe(directory: str | Path) -> dict[str, Any]:
    """Summarise a run or model directory from its metadata, never loading the weights.

    Reads ``model.json`` (checked for format and digest), the tensor shapes in the header of
    ``model.safetensors`` (to count parameters), ``metrics.json`` and the JSON document of
    ``checkpoint/state.safetensors``, whichever exist.

    Returns:
        A JSON-ready dict with keys ``path``, ``versions``, ``config``, ``model``, ``sizes``,
        ``data``, ``training``, ``holdout``, ``checkpoint`` and ``ensemble`` (``None`` where
        unknown or, for ``ensemble``, for a single network).
    """
    directory = Path(directory)
    ckpt_path = directory / CHECKPOINT_DIR / CHECKPOINT_FILE
    has_model = (directory / META).is_file()
    if directory.is_dir() and not has_model and not ckpt_path.is_file():
        raise CheckpointError(
            f"'{directory}' holds neither {META} nor {CHECKPOINT_DIR}/{CHECKPOINT_FILE}; "
            "give a run directory (elman train --out) or a model directory"
        )
    out: dict[str, Any] = dict.fromkeys(
        ("versions", "config", "model", "sizes", "data", "training", "holdout", "checkpoint",
         "ensemble")
    )
    out["path"] = str(directory)
    if has_model or not directory.is_dir():
        meta = read_meta(directory)
        check_seal(meta, META_DIGEST_KEY, directory / META)
        out.update(_from_model_meta(meta, directory))
    if ckpt_path.is_file():
        doc = read_checkpoint_doc(ckpt_path)
        out["checkpoint"] = _from_checkpoint(doc, str(ckpt_path))
        out["config"] = out["config"] or doc.get("config")
        source = ((out["config"] or {}).get("data") or {}).get("source")
        out["data"] = out["data"] or {"source": source, "fingerprint": doc.get("data_fingerprint")}
        out["versions"] = out["versions"] or _versions(doc)
    metrics = read_json_object(directory / METRICS)
    if metrics is not None:
        out["holdout"] = metrics.get("holdout")
    return out


def _versions(doc: dict[str, Any]) -> dict[str, Any]:
    keys = ("format", "format_version", "elman_version", "torch_version")
    return {k: doc.get(k) for k in keys}


def _from_model_meta(meta: dict[str, Any], directory: Path) -> dict[str, Any]:
    model = dict(meta.get("model_config") or {})
    weights = directory / WEIGHTS
    if weights.is_file():
        _, shapes = read_header(weights)
        model["parameters"] = sum(
            math.prod(shape) for name, shape in shapes.items() if name.startswith("model.")
        )
    data = meta.get("data")
    if data is None:  # a model saved from Python: the schema of the stored context
        ctx = meta.get("series") or [{}]
        first = ctx[0]
        data = {
            "source": first.get("source"),
            "targets": first.get("targets"),
            "covariates": first.get("covariates"),
            "future_covariates": first.get("future_covariates"),
            "freq": first.get("freq"),
            "n_series": len(ctx),
            "last_timestamp": max(
                (str(c["index"][-1]) for c in ctx if c.get("index")), default=None
            ),
        }
    return {
        "versions": _versions(meta),
        "config": meta.get("config"),
        "model": model,
        "sizes": meta.get("sizes"),
        "data": data,
        "training": meta.get("metrics"),
        "ensemble": meta.get("ensemble"),
    }


def ensemble_text(doc: dict[str, Any]) -> str:
    """One line on an ensemble (:meth:`elman.evaluation.ensemble.Selection.to_dict`'s form):
    the weights, the validation windows and the loss against the best single member."""
    weights = doc.get("weights") or {}
    losses = doc.get("member_loss") or {}
    parts = ", ".join(f"{n} {w:.2f}" for n, w in sorted(weights.items(), key=lambda kv: -kv[1]))
    best = doc.get("best_member")
    text = f"{parts} ({doc.get('windows', '?')} validation window(s) per series; loss "
    text += f"{float(doc.get('loss', float('nan'))):.4g}"
    if best in losses:
        text += f", best single member {best} {float(losses[best]):.4g}"
    others = ", ".join(f"{n} {float(v):.4g}" for n, v in losses.items() if n != best)
    return text + (f"; others {others})" if others else ")")


def averaging_text(training: dict[str, Any]) -> str:
    """What ``--average`` did, from :meth:`elman.forecaster.Forecaster.summary`; empty when
    it was off or had fewer than two checks to average."""
    tried = training.get("averaged_loss")
    if tried is None:
        return ""
    n = training.get("averaged") or 0
    best = float(training.get("best_loss") or float("nan"))
    scores = f"validation {tried:.4g} against {best:.4g} for the best check"
    if n:
        return f"the weights of the {n} best checks averaged ({scores})"
    return f"the best check kept: averaging scored worse ({scores})"


def _from_checkpoint(doc: dict[str, Any], where: str) -> dict[str, Any]:
    state = decode_state(doc.get("train_state"), {}, set(), where)
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: invalid training state")
    epochs = (doc.get("train_config") or {}).get("epochs")
    done = bool(state.get("stopped_early")) or state.get("epoch") == epochs
    return {
        "epoch": state.get("epoch"),
        "epochs": epochs,
        "complete": done,
        "interrupted": bool(state.get("interrupted")),
        "stopped_early": bool(state.get("stopped_early")),
        "best_epoch": state["best_epoch"] + 1 if state.get("best_epoch", -1) >= 0 else None,
        "best_loss": state.get("best_loss"),
        "retries": state.get("retries"),
    }


def open_tensorboard(directory: Path) -> Any:
    """A ``SummaryWriter`` on ``directory``, or ``None`` when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed; no TensorBoard logs (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(directory))


def write_history(path: Path, history: list[EpochRecord]) -> Path:
    """Per-epoch metrics as CSV (1-based epochs)."""
    buf = io.StringIO()
    cols = ["epoch", "train_loss", "val_loss", "lr", "seconds", "samples_per_s", "threads"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for rec in history:
        row = asdict(rec)
        row["epoch"] = rec.epoch + 1
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())
    return path


def holdout_frame(result: HoldoutResult, series: list[Series]) -> pd.DataFrame:
    """Long table: series id, time, target, actual, then one column per method."""
    rows = []
    h = result.test_size
    for i, s in enumerate(series):
        stamps = s.index[len(s) - h :]
        for j, target in enumerate(s.targets):
            for k in range(h):
                row: dict[str, Any] = {
                    "series": s.series_id,
                    "time": str(stamps[k]),
                    "target": target,
                    "actual": result.actual[i, k, j],
                }
                row.update({name: fc[i, k, j] for name, fc in result.forecasts.items()})
                rows.append(row)
    frame = pd.DataFrame(rows)
    if frame["series"].isna().all():
        frame = frame.drop(columns="series")
    return frame


def write_holdout(
    out: Path, result: HoldoutResult, series: list[Series], extra: dict[str, Any]
) -> list[Path]:
    """``metrics.json`` and ``holdout.csv``."""
    atomic_write_json(
        out / METRICS,
        {
            "holdout": {
                "test_size": result.test_size,
                "season": result.season,
                "metrics": result.metrics,
                "notes": result.notes,
            },
            **extra,
        },
    )
    atomic_write_text(out / HOLDOUT, holdout_frame(result, series).to_csv(index=False))
    return [out / METRICS, out / HOLDOUT]


# Columns each table must hold for the pictures and the report; the integer ones hold counts.
TABLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    HISTORY: (("epoch", "train_loss"), ("epoch",)),
    HOLDOUT: (("time", "target", "actual", "model"), ()),
    FORECASTS_CSV: (
        ("fold", "cutoff", "step", "time", "target", "model"),
        ("fold", "cutoff", "step"),
    ),
    ACTUALS: (("position", "time"), ("position",)),
}


def read_json_object(p: Path) -> dict[str, Any] | None:
    """A JSON object from ``p`` (``None`` when the file is absent), or one clear error."""
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except RecursionError as exc:
        raise CheckpointError(
            f"{p} is corrupt (its JSON is nested too deeply to read); use an intact copy"
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{p} is corrupt (not valid JSON: {exc})") from exc
    if not isinstance(doc, dict):
        raise CheckpointError(f"{p} is corrupt (expected a JSON object)")
    return doc


def read_table(p: Path) -> pd.DataFrame | None:
    """A run's CSV table (``None`` when absent), with the columns :data:`TABLE_COLUMNS` needs."""
    if not p.is_file():
        return None
    try:
        frame = pd.read_csv(p, dtype={"series": str, "time": str})
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise CheckpointError(f"{p} is corrupt (not a readable CSV table: {exc})") from exc
    required, counts = TABLE_COLUMNS.get(p.name, ((), ()))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CheckpointError(
            f"{p} has no '{missing[0]}' column; it was edited or damaged; redraw it with "
            "'elman train' or 'elman backtest', or restore an intact copy"
        )
    for col in counts:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = ~(values.notna() & (values == values.round()))
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header line
            raise CheckpointError(
                f"{p}, row {row}, column '{col}': {frame[col].iloc[row - 2]!r} is not a whole "
                "number; the file was edited or damaged; restore an intact copy"
            )
        frame[col] = values.astype("int64")
    return frame


@dataclass
class RunFiles:
    """The parts of a run directory the pictures and the report use (``None``: absent)."""

    path: Path
    meta: dict[str, Any] | None
    metrics: dict[str, Any] | None
    history: pd.DataFrame | None
    holdout: pd.DataFrame | None
    backtest: pd.DataFrame | None
    actuals: pd.DataFrame | None

    @classmethod
    def read(cls, path: Path) -> RunFiles:
        """Read every known file that exists.

        Raises:
            CheckpointError: a file is not valid JSON or CSV, is nested too deeply, or lacks
                a column the pictures need (or holds text where counts belong), with the
                file and the column named.
        """
        return cls(
            path=path,
            meta=read_json_object(path / META),
            metrics=read_json_object(path / METRICS),
            history=read_table(path / HISTORY),
            holdout=read_table(path / HOLDOUT),
            backtest=read_table(path / FORECASTS_CSV),
            actuals=read_table(path / ACTUALS),
        )

    @property
    def model_name(self) -> str:
        """The network type, from the metadata."""
        return str((self.meta or {}).get("config", {}).get("model", {}).get("model", "model"))
