"""A live stream, end to end: read points, emit predict-then-learn rows, checkpoint, resume.

This is what ``elman stream`` runs (:func:`run_stream`). For every good point it writes one
row: the prediction made before the point, the error, the running MAE and the anomaly flag;
then the :class:`~elman.online.learner.OnlineLearner` learns from the point.

Crash safety. Every ``checkpoint_every`` points, and when the stream ends or is stopped
(SIGINT / SIGTERM), the output is flushed to disk and then one file,
``STATE/stream.safetensors``, is replaced atomically. It holds the learner (weights,
optimizer, hidden state, rings, scaler, running metrics) and, in its JSON header, the
input position (bytes and lines read, the last time stamp), the output length in bytes and
the counters. A restart with the same command finds it, cuts the output back to the
recorded length (rows written after the checkpoint are dropped and written again) and
continues after the recorded input position, so after ``kill -9`` no point is lost and
none is written twice. A file input is continued by byte offset; a pipe cannot seek, so
the producer replays the stream and the points already processed are skipped: by time
stamp when there is a time column, else by line count. Rows written to stdout cannot be
taken back: after a crash, the rows since the last checkpoint appear again.

A fresh network (``ModelSpec(model_type=...)``) fits its scaler (mean and standard
deviation) on the first ``warmup`` points; those rows have no prediction. With
``difference=True`` it learns the change from one point to the next instead of the value
(the prediction is the last value plus the predicted change), which a fixed scaler needs
on a series with a trend or level shifts. A saved model
(``ModelSpec(model_dir=...)``) uses its stored scaler, and first runs through the end of
its training data.
"""

from __future__ import annotations

import json
import logging
import math
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save

from elman._version import __version__
from elman.checkpoint import load_tensor_file, read_document
from elman.config import OnlineConfig, check_number_marks
from elman.data.scaling import Scaler
from elman.errors import CheckpointError, ConfigError, DataError
from elman.files import (
    STREAM_CHECKPOINT,
    STREAM_STATS,
    atomic_write_bytes,
    atomic_write_json,
    check_output_file,
)
from elman.forecasting.predictor import Predictor
from elman.forecasting.saved import load_predictor
from elman.models.registry import build_model
from elman.online.attach import from_predictor
from elman.online.learner import OnlineLearner, quiet_numerics
from elman.online.stream_io import (
    FORMATS,
    BadPoint,
    Columns,
    Interrupted,
    LineReader,
    PointFormat,
    RowWriter,
    check_order,
    check_state_dir,
    parse_point,
    sniff_columns,
    time_key,
)
from elman.runtime import on_signals

log = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "elman-stream", 1
ON_BAD = ("skip", "error")


@dataclass(frozen=True)
class ModelSpec:
    """The model to stream: a saved forecaster directory, or a fresh network."""

    model_dir: str | None = None  # a directory written by 'elman train' / Forecaster.save
    model_type: str | None = None  # elman | rnn | lstm | gru | tcn (a fresh network)
    hidden_size: int = 32  # fresh network: hidden units
    num_layers: int = 1  # fresh network: stacked layers
    seed: int = 0  # fresh network: weight initialisation
    difference: bool = False  # fresh network: learn the change from one point to the next
    network_only: bool = False  # a saved ensemble: stream its network member alone

    def __post_init__(self) -> None:
        if (self.model_dir is None) == (self.model_type is None):
            raise ConfigError("give exactly one of --model DIR and --model-type NAME")
        if self.difference and self.model_dir is not None:
            raise ConfigError(
                "--difference applies to a fresh network (--model-type); a saved model keeps "
                "the input it was trained on"
            )


@dataclass(frozen=True)
class StreamOptions:
    """Input, output, state and the handling of bad points."""

    input: str = "-"  # a file, or - for stdin
    output: str | None = None  # a file; None writes to stdout
    state: str | None = None  # checkpoint directory; None: OUTPUT.state (none for stdout)
    follow: bool = False  # keep reading a file that is being appended to
    fmt: str | None = None  # csv | jsonl; None: jsonl for a .jsonl/.ndjson output, else csv
    on_bad: str = "skip"  # skip: drop the point with a warning; error: stop
    target: str | None = None  # CSV input: the value column
    time_col: str | None = None  # CSV input: the time column (default: found by name)
    checkpoint_every: int = 1000  # points between checkpoints
    warmup: int = 32  # fresh network: points that fit the scaler
    poll: float = 0.2  # seconds between looks at a followed file
    overwrite: bool = False  # start over: replace the output and the checkpoint
    decimal: str = "."  # decimal mark of the values (',' for 1502,51)
    thousands: str | None = None  # thousands separator of the values (',' for 1,502.5)
    dayfirst: bool = False  # read ambiguous dates like 01/02/2023 day first
    date_format: str | None = None  # strftime format of the time column, e.g. %d/%m/%Y

    def __post_init__(self) -> None:
        if self.on_bad not in ON_BAD:
            raise ConfigError(f"--on-bad '{self.on_bad}' is not one of: {', '.join(ON_BAD)}")
        if self.fmt is not None and self.fmt not in FORMATS:
            raise ConfigError(f"--format '{self.fmt}' is not one of: {', '.join(FORMATS)}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint-every ({self.checkpoint_every}) must be >= 1")
        if self.warmup < 2:
            raise ConfigError(f"--warmup ({self.warmup}) must be >= 2")
        if not self.poll > 0:
            raise ConfigError(f"--poll ({self.poll}) must be > 0")
        check_number_marks(self.decimal, self.thousands, None)

    @property
    def point_format(self) -> PointFormat:
        """How values and times are written."""
        return PointFormat(self.decimal, self.thousands, self.dayfirst, self.date_format)

    @property
    def out_format(self) -> str:
        """The output format in effect."""
        if self.fmt:
            return self.fmt
        suffix = Path(self.output).suffix.lower() if self.output else ""
        return "jsonl" if suffix in (".jsonl", ".ndjson") else "csv"


def state_dir_for(opts: StreamOptions) -> Path | None:
    """``--state``, or ``OUTPUT.state`` beside a file output, or ``None`` for stdout."""
    if opts.state is not None:
        return Path(opts.state)
    return Path(opts.output + ".state") if opts.output else None


def run_stream(
    spec: ModelSpec,
    online: OnlineConfig,
    opts: StreamOptions,
    warn: Callable[[str], None] | None = None,
    handle_signals: bool = True,
) -> dict[str, Any]:
    """Stream ``opts.input`` through the model until the input ends or a signal stops it.

    Args:
        spec: the model.
        online: learning and scoring options.
        opts: input, output, state, bad-point handling.
        warn: called with one line per skipped point (default: ``logging.warning``).
        handle_signals: stop cleanly on SIGINT / SIGTERM (main thread only).

    Returns:
        Counters and metrics: points, bad points, anomalies, updates, running MAE, where
        the state went and the point the run resumed from.
    """
    session = StreamSession(spec, online, opts, warn or log.warning)
    signals = (signal.SIGINT, signal.SIGTERM)
    with on_signals(lambda: _stop(session), *signals) if handle_signals else _nothing():
        return session.run()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _stop(session: StreamSession) -> None:
    """SIGINT or SIGTERM: stop after the current point (at once if blocked on input)."""
    session.stop_requested = True
    reader = session.reader
    if reader is not None and reader.blocking:
        raise Interrupted


class StreamSession:
    """The state of one ``run_stream`` call (see the module docstring)."""

    def __init__(
        self, spec: ModelSpec, online: OnlineConfig, opts: StreamOptions,
        warn: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.spec, self.online, self.opts, self.warn = spec, online, opts, warn
        self.output = check_output_file(opts.output, overwrite=True, example="out.csv")
        self.state_dir = check_state_dir(state_dir_for(opts))
        self.where = "stdin" if opts.input == "-" else opts.input
        self.stop_requested = False
        self.reader: LineReader | None = None
        self.learner: OnlineLearner | None = None
        self.columns: Columns | None = None
        self.last_time: tuple[str, Any] | None = None
        self.last_stamp: str | None = None
        self.points = self.bad = self.lines = 0
        self.warmup: list[float] = []
        self.skip_lines = 0  # pipe resume without time column: lines to pass over
        self.replay_after: tuple[str, Any] | None = None  # pipe resume by time stamp
        self.resumed_from: int | None = None
        self.last_value: float | None = None  # --difference: the previous value
        self.row = np.zeros(1)
        self.ckpt = self._read_checkpoint()

    # ------------------------------------------------------------------ set-up
    def fingerprint(self) -> dict[str, Any]:
        """The options a resumed run must share with the run that wrote the checkpoint."""
        spec = asdict(self.spec)
        if not spec["network_only"]:  # checkpoints written before the option still resume
            del spec["network_only"]
        if self.spec.model_dir:
            spec["model_dir"] = str(Path(self.spec.model_dir).resolve())
        return {
            "model": spec,
            "online": self.online.to_dict(),
            "target": self.opts.target,
            "time_col": self.opts.time_col,
            "format": self.opts.out_format,
            "warmup": self.opts.warmup if self.spec.model_type else None,
        }

    def _read_checkpoint(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        path = self.state_dir / STREAM_CHECKPOINT if self.state_dir else None
        if path is None or not path.exists():
            if self.output is not None and self.output.exists() and not self.opts.overwrite:
                raise ConfigError(
                    f"--output '{self.output}' already exists and there is no checkpoint to "
                    "resume from; choose another name or pass --overwrite"
                )
            return None
        if self.opts.overwrite:
            path.unlink()
            return None
        tensors, meta = read_checkpoint(path)
        self._check_fingerprint(meta, path)
        return tensors, meta

    def _check_fingerprint(self, meta: dict[str, Any], path: Path) -> None:
        old, new = meta.get("fingerprint", {}), self.fingerprint()
        for key in new:
            if old.get(key) != new[key]:
                raise CheckpointError(
                    f"{path} was written with other {key} options ({old.get(key)} vs "
                    f"{new[key]}); rerun with the same options, another --state, or --overwrite"
                )

    def _build_learner(self) -> None:
        tensors, meta = self.ckpt if self.ckpt else ({}, {})
        saved = meta.get("learner")
        where = str(self.state_dir / STREAM_CHECKPOINT) if self.state_dir else "checkpoint"
        inner = {k[8:]: v for k, v in tensors.items() if k.startswith("learner.")}
        if self.spec.model_dir is not None:
            stored = load_predictor(self.spec.model_dir)
            predictor, series = stored.predictor, stored.series
            if stored.ensemble is not None:
                if not self.spec.network_only:
                    raise ConfigError(
                        f"--model '{self.spec.model_dir}' is an ensemble (--ensemble), whose "
                        "statistical members are refitted to a history, not learned a point "
                        "at a time; stream its network alone with --network-only, or "
                        "retrain with --ensemble none"
                    )
                series = [predictor.context(s) for s in series]  # what the network reads
            _check_streamable(predictor, self.spec.model_dir)
            self.learner = from_predictor(predictor, series, self.online)
            if saved:
                self.learner.restore(inner, saved, where)
        elif saved:
            model = build_model(**saved["model_config"])
            self.learner = OnlineLearner.from_checkpoint(model, inner, saved, where)
        self.warmup = list(meta.get("warmup", []))
        self.last_value = meta.get("last_value")

    def _start_fresh_learner(self) -> None:
        values = np.asarray(self.warmup, np.float64).reshape(-1, 1)
        scaler = Scaler("standard").fit(values)
        torch.manual_seed(self.spec.seed)
        assert self.spec.model_type is not None
        model = build_model(self.spec.model_type, 1, 1, self.spec.hidden_size,
                            self.spec.num_layers)  # fmt: skip
        self.learner = OnlineLearner(model, scaler, config=self.online)
        self.learner.prime(values, learn=True)
        self.warmup = []

    def _open(self) -> tuple[LineReader, RowWriter]:
        reader = LineReader(self.opts.input, self.opts.follow, self.opts.poll,
                            lambda: self.stop_requested)  # fmt: skip
        meta = self.ckpt[1] if self.ckpt else None
        resume_at = None
        if meta is not None:
            self._resume_input(reader, meta["input"])
            resume_at = int(meta["output"]["bytes"]) if self.output is not None else None
            stats = meta["stats"]
            self.points, self.bad = stats["points"], stats["bad"]
            self.resumed_from = self.points
        writer = RowWriter(self.output, self.opts.out_format, resume_at)
        reader.idle = writer.flush
        return reader, writer

    def _resume_input(self, reader: LineReader, info: dict[str, Any]) -> None:
        self.columns = Columns(**info["columns"]) if info["columns"] else None
        self.last_stamp = info["last_stamp"]
        self.last_time = (
            time_key(self.last_stamp, self.opts.point_format)
            if self.last_stamp is not None
            else None
        )
        if reader.seekable:
            reader.seek(int(info["offset"]))
            self.lines = int(info["lines"])
        elif self.last_time is not None:
            self.replay_after = self.last_time
        else:
            self.skip_lines = int(info["lines"])

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Process the stream; checkpoint at the end; return the summary."""
        self._build_learner()
        self.reader, self.writer = self._open()
        try:
            try:
                with quiet_numerics():
                    for raw in self.reader.lines():
                        self._line(raw)
                        if self.stop_requested:
                            break
            except Interrupted:
                self.stop_requested = True
            self.checkpoint()
        finally:  # rows past the last checkpoint are cut off by the next resume
            self.reader.close()
            self.writer.close()
        return self.summary()

    def _line(self, raw: bytes) -> None:
        self.lines += 1
        if self.skip_lines:
            self.skip_lines -= 1
            return
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            self._bad("the line is not UTF-8 text")
            return
        if not text.strip() and self.columns is None:
            return  # blank lines before the first point or header
        if self.columns is None:
            self.columns = sniff_columns(text, self.opts.target, self.opts.time_col)
            self.writer.header(self.columns.time_name)
            if self.columns.mode == "csv":
                return
        elif self.replay_after is not None and text.strip() == self.columns.header_line:
            return
        try:
            fmt = self.opts.point_format
            value, stamp = parse_point(text, self.columns, fmt)
            if stamp is not None and self._replayed(stamp):
                return
            key = check_order(stamp, self.last_time, fmt) if stamp is not None else None
        except BadPoint as exc:
            self._bad(str(exc))
            return
        self.last_time, self.last_stamp = key, stamp
        self._point(value, stamp)

    def _replayed(self, stamp: str) -> bool:
        """Pipe resume: whether the point was processed before the restart."""
        if self.replay_after is None:
            return False
        key = time_key(stamp, self.opts.point_format)
        if key[0] == self.replay_after[0] and key[1] <= self.replay_after[1]:
            return True
        self.replay_after = None
        return False

    def _point(self, value: float, stamp: str | None) -> None:
        index = self.points
        self.points += 1
        x, base = value, 0.0  # the model's input, and what its prediction is added to
        if self.spec.difference:
            prev, self.last_value = self.last_value, value
            x, base = (value - prev, prev) if prev is not None else (math.nan, 0.0)
        learner = self.learner
        if learner is None or math.isnan(x):
            if not math.isnan(x):
                self.warmup.append(x)
            self.writer.add(index, stamp, value, None, None, False)
            if len(self.warmup) >= self.opts.warmup:
                self._start_fresh_learner()
        else:
            self.row[0] = x
            step = learner.step(self.row)
            pred = step.prediction[0] + base if step.prediction is not None else None
            self.writer.add(index, stamp, value, pred, step.running_mae, step.anomaly)
        if self.points % self.opts.checkpoint_every == 0:
            self.checkpoint()

    def _bad(self, reason: str) -> None:
        if self.opts.on_bad == "error":
            self.checkpoint(before_line=True)
            raise DataError(
                f"{self.where} line {self.lines}: {reason}; the stream stopped before this "
                "line and the state is saved (fix the line, or use --on-bad skip)"
            )
        self.bad += 1
        self.warn(f"{self.where} line {self.lines}: {reason}; point skipped")

    # ------------------------------------------------------------------ state
    def checkpoint(self, before_line: bool = False) -> None:
        """Flush the output to disk, then atomically replace the state file.

        ``before_line``: record the input position before the current line (which was not
        used), so that a restart reads it again.
        """
        if self.state_dir is None:
            self.writer.flush()
            return
        self.writer.flush(sync=True)
        tensors: dict[str, torch.Tensor] = {}
        learner_meta = None
        if self.learner is not None:
            inner, learner_meta = self.learner.checkpoint()
            tensors = {f"learner.{k}": v for k, v in inner.items()}
        assert self.reader is not None
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "elman_version": __version__,
            "fingerprint": self.fingerprint(),
            "input": {
                "offset": self.reader.line_start if before_line else self.reader.offset,
                "lines": self.lines - 1 if before_line else self.lines,
                "columns": self.columns.to_dict() if self.columns else None,
                "last_stamp": self.last_stamp,
            },
            "output": {"bytes": self.writer.position, "rows": self.points},
            "stats": {"points": self.points, "bad": self.bad},
            "warmup": self.warmup,
            "last_value": self.last_value,
            "learner": learner_meta,
        }
        data = st_save(tensors, metadata={"elman": json.dumps(meta)})
        atomic_write_bytes(self.state_dir / STREAM_CHECKPOINT, data)
        atomic_write_json(self.state_dir / STREAM_STATS, self.summary())

    def summary(self) -> dict[str, Any]:
        """Counters and metrics of the stream so far."""
        learned = self.learner.summary() if self.learner is not None else {}
        learned.pop("points", None)
        return {
            "points": self.points,
            "bad_points": self.bad,
            "resumed_from": self.resumed_from,
            "warmup_left": (self.opts.warmup - len(self.warmup)) if self.learner is None else 0,
            "state": str(self.state_dir) if self.state_dir else None,
            "stopped": self.stop_requested,
            **learned,
        }


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a stream checkpoint (never runs code from the file)."""
    meta = read_document(path, FORMAT, FORMAT_VERSION, "an elman stream checkpoint")
    return load_tensor_file(path), meta


def _check_streamable(predictor: Predictor, where: str) -> None:
    layout = predictor.layout
    if layout.n_targets != 1 or layout.n_covariates or layout.n_future:
        raise ConfigError(
            f"--model '{where}' reads {layout.input_size} input columns; elman stream feeds "
            "one value per point, so it needs a model of one target without covariates"
        )
