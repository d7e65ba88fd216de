"""The durable state of the served series: an append-only log, snapshots, replay on start.

An update is applied to its series' forecaster, appended to ``STATE/updates.log`` and
acknowledged only after the log is fsynced. Updates that arrive while one fsync runs are
written and fsynced together by the next (group commit), so a burst of updates to many
series costs a few fsyncs, not one each. Every ``snapshot_every`` updates of a series what
it learned (its online weights, optimizer and recurrent state and series tail, on top of
the model files kept in ``STATE/model``) is written to one file in ``STATE/snapshots/``
(a temporary file renamed in one step, so a crash leaves the old snapshot or the new one).
On start the latest snapshot of each series is loaded and the log records after it are
applied again in order, which gives the state every acknowledged update left; then the
replayed series are snapshotted and the log starts empty. Snapshot directories written by
earlier versions (a whole saved forecaster each) are still read.

Log lines are ``CRC32 JSON``: a line cut short by a crash (never acknowledged) fails its
check and is dropped at the end of the log; a damaged line with intact lines after it means
the file was damaged, and the server refuses to start rather than lose updates silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elman.checkpoint import read_document, read_sealed, write_sealed
from elman.data.series import Series
from elman.errors import CheckpointError, ConfigError
from elman.files import (
    SERVE_IDENTITY,
    SERVE_LOG,
    SERVE_MODEL,
    SERVE_SNAPSHOT_INFO,
    SERVE_SNAPSHOTS,
    atomic_write_bytes,
    atomic_write_json,
    sync_dir,
)
from elman.forecaster import Forecaster
from elman.runtime import configure_threads
from elman.serving.model import ServedModel, observations, stamps
from elman.serving.tables import TIME, ApiError

log = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "elman-serve-state", 1
SNAPSHOT_FORMAT, SNAPSHOT_VERSION = "elman-serve-snapshot", 1
SNAPSHOT_SUFFIX = ".safetensors"
SNAPSHOT_WHAT = "an elman serve snapshot"


@dataclass
class SeriesState:
    """One served series: its forecaster (loaded on first use) and its counters."""

    sid: str
    forecaster: Forecaster | None = None
    version: int = 0  # updates applied since the run was trained (one per accepted request)
    points: int = 0  # points applied by those updates
    snapshot_version: int = 0  # version of the latest snapshot on disk
    phase: int = 0  # shifts the series' snapshot points, so that series snapshot in turn
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # forecasts of the current version by (horizon, levels): a forecast depends on the state
    # alone, so repeated requests between two updates are answered without the model
    cache: dict[tuple[int, tuple[int, ...]], Any] = field(default_factory=dict, repr=False)
    cache_version: int = -1
    ahead: Ahead | None = field(default=None, repr=False)  # the next stamps, as text


AHEAD = 256  # stamps after the last committed one kept as text per series


@dataclass
class Ahead:
    """The stamps that follow a series on its grid, and their text.

    An update whose stamps are, as sent, the next ones of this block is matched by comparing
    strings, without parsing them. ``owner`` is the forecaster's series (the object) that
    ends where ``future[start]`` follows; a forecaster replaces that object on every
    update, so any change the block did not see (a failed update, a replay) leaves
    ``owner`` behind and the block is rebuilt. ``pending``: the ``start`` an update matched
    here leads to once it is applied.
    """

    owner: Series
    future: pd.Index
    text: list[str]
    start: int = 0
    pending: int | None = None


@dataclass(frozen=True)
class Prepared:
    """New points of one update after the idempotency check."""

    index: pd.Index  # stamps of the points to apply
    values: np.ndarray  # [T, C]
    skipped: list[str]  # stamps at or before the last committed one


def encode(record: dict[str, Any]) -> bytes:
    """One log line: the CRC32 of the JSON record, a space, the record, a newline."""
    body = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode(line: bytes) -> dict[str, Any] | None:
    crc, _, body = line.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def read_log(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The intact records of a log and the byte length they fill.

    Raises:
        CheckpointError: a damaged line is followed by intact ones.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    pos = 0
    lines = data.split(b"\n")
    for n, line in enumerate(lines):
        last = n == len(lines) - 1  # the text after the last newline: a torn write, if any
        record = None if last else _decode(line)
        if record is None:
            rest = [x for x in lines[n + 1 : -1] if _decode(x) is not None]
            if rest:
                raise CheckpointError(
                    f"{path}: line {n + 1} is damaged and {len(rest)} intact line(s) follow "
                    "it; the file was changed outside elman; restore it or start another --state"
                )
            break
        records.append(record)
        pos += len(line) + 1
    return records, pos


class CommitLog:
    """The append-only log with group commit (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.failed: str | None = None
        self.fsyncs = 0
        self.records = 0

    def start(self) -> None:
        """Start the writer task (inside the server's event loop)."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def append(self, line: bytes) -> None:
        """Return once ``line`` is on disk (fsynced)."""
        if self.failed:
            raise ApiError(
                503,
                f"the update log cannot be written ({self.failed}); no "
                "update is accepted until the server restarts",
                "state",
            )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((line, done))
        self.wake.set()
        await done

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.queue = self.queue, []
            if not batch:
                continue
            try:
                await asyncio.to_thread(self._write, b"".join(line for line, _ in batch))
            except OSError as exc:
                self.failed = f"{exc.strerror or exc}"
                log.error("the update log %s cannot be written: %s", self.path, exc)
                for _, done in batch:
                    done.set_exception(
                        ApiError(503, f"the update was not stored: {self.failed}", "state")
                    )
                continue
            self.fsyncs += 1
            self.records += len(batch)
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        os.fsync(self.fd)

    async def close(self) -> None:
        """Write what is queued, stop the writer, close the file."""
        while self.queue:
            self.wake.set()
            await asyncio.sleep(0.001)
        if self.task is not None:
            self.task.cancel()
        os.close(self.fd)


class Store:
    """Every served series, its snapshots and its log (see the module docstring)."""

    def __init__(self, model: ServedModel, state_dir: str | Path, snapshot_every: int = 100):
        if snapshot_every < 1:
            raise ConfigError(f"--snapshot-every ({snapshot_every}) must be >= 1")
        self.model, self.snapshot_every = model, snapshot_every
        self.dir = Path(state_dir)
        self.snap_dir = self.dir / SERVE_SNAPSHOTS
        self.log_path = self.dir / SERVE_LOG
        _check_writable(self.dir)
        self._check_identity()
        self._keep_model_copy()
        self.series: dict[str, SeriesState] = {}
        self.replayed = 0

    # ------------------------------------------------------------------ set-up
    def _check_identity(self) -> None:
        path = self.dir / SERVE_IDENTITY
        mine = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "weights_sha256": self.model.meta.get("weights_sha256"),
        }
        if path.exists():
            try:
                theirs = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"{path}: unreadable ({exc}); use another --state") from exc
            if theirs != mine:
                raise ConfigError(
                    f"--state '{self.dir}' holds the state of another model (its {SERVE_IDENTITY} "
                    f"names weights {theirs.get('weights_sha256')}); use another --state"
                )
        else:
            atomic_write_json(path, mine)

    def _keep_model_copy(self) -> None:
        """Copy the model files into the state directory; held series load from the copy."""
        copy = self.dir / SERVE_MODEL
        for name, data in self.model.files.items():
            path = copy / name
            if not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
        self.model.source = copy

    def state(self, sid: str) -> SeriesState:
        """The state of series ``sid`` (404 for an id the model does not serve)."""
        st = self.series.get(sid)
        if st is None:
            phase = self.model.position(sid) * self.snapshot_every // len(self.model.ids)
            st = self.series[sid] = SeriesState(sid, phase=phase)
        return st

    def snapshot_due(self, st: SeriesState) -> bool:
        """Whether the update just applied to ``st`` ends with a snapshot.

        Every ``snapshot_every`` updates of a series, at points shifted by its position
        among the model's series: series updated in step (as a feed of all series at once
        sends them) snapshot in turn instead of all at the same moment. A snapshot that
        failed is tried again on every update once ``snapshot_every`` have passed.
        """
        every = self.snapshot_every
        if st.version <= st.snapshot_version:
            return False
        return (st.version + st.phase) % every == 0 or st.version - st.snapshot_version >= every

    def forecaster(self, st: SeriesState) -> Forecaster:
        """The series' forecaster, loaded from the run directory on first use."""
        if st.forecaster is None:
            st.forecaster = self.model.forecaster_for(st.sid)
            configure_threads(1)  # one thread per request: requests run side by side
        return st.forecaster

    # ------------------------------------------------------------------ updates
    def prepare(self, st: SeriesState, table: dict[str, list[Any]]) -> Prepared:
        """The points of ``table`` after the last committed stamp, checked against the grid."""
        old = self.forecaster(st).series[0]
        known = self._next_stamps(st, old, table.get(TIME))
        index, values = observations(table, self.model.observed, old, known)
        if known is not None:
            return Prepared(index, values, [])
        keep = np.asarray(index > old.index[-1], bool)
        skipped = [str(t) for t in index[~keep]]
        index, values = index[keep], values[keep]
        if len(index):
            expected = old.future_index(len(index))
            bad = np.flatnonzero(np.asarray(index != expected))
            if len(bad):
                i = int(bad[0])
                before = old.index[-1] if i == 0 else index[i - 1]
                raise ApiError(
                    400,
                    f"time '{index[i]}' is off the series' grid: the point after "
                    f"'{before}' is '{expected[i]}' (frequency {old.freq or 'integer steps'}); "
                    "send new points in order, without gaps",
                    TIME,
                )
        return Prepared(index, values, skipped)

    @staticmethod
    def _next_stamps(st: SeriesState, old: Series, sent: Any) -> pd.Index | None:
        """The stamps of an update that sends exactly the next stamps of the grid, as text.

        The common update (the next point or points, stamped as the series prints them) is
        matched against the series' :class:`Ahead` block by string comparison; anything
        else (``None``) is parsed and checked in full.
        """
        if not isinstance(sent, list) or not 0 < len(sent) <= AHEAD // 2:
            return None
        block = st.ahead
        if block is None or block.owner is not old:
            future = old.future_index(AHEAD)
            block = st.ahead = Ahead(old, future, [str(t) for t in future])
        s, n = block.start, len(sent)
        block.pending = None
        if s + n > len(block.text):
            st.ahead = None  # rebuilt from the new end on the next update
            return None
        if sent != block.text[s : s + n]:
            return None
        block.pending = s + n
        return block.future[s : s + n]

    def apply(self, st: SeriesState, index: pd.Index, values: np.ndarray) -> dict[str, Any]:
        """Learn from new points (``Forecaster.update``); returns the log record."""
        f = self.forecaster(st)
        st.cache, st.cache_version = {}, -1  # before the update: a failure leaves no stale entry
        f.update(dataclasses.replace(f.series[0], values=values, index=index))
        block = st.ahead
        if block is not None and block.pending is not None:  # the update matched the block
            block.start, block.owner, block.pending = block.pending, f.series[0], None
        st.version += 1
        st.points += len(index)
        return {"s": st.sid, "v": st.version, "t": [str(t) for t in index], "x": values.tolist()}

    def snapshot(self, st: SeriesState) -> None:
        """Save what the series learned as its latest snapshot (one file, written atomically).

        A snapshot holds :meth:`Forecaster.learned_state <elman.forecaster.Forecaster.
        learned_state>` (online weights, optimizer and recurrent state, the series tail) and
        not the whole model, whose constant parts (scalers, calibration, configuration) stay
        in ``STATE/model``: one write of a few hundred kilobytes instead of a model save.
        """
        f = self.forecaster(st)
        tensors, learned = f.learned_state()
        key = hashlib.sha256(st.sid.encode()).hexdigest()[:16]
        final = self.snap_dir / f"{key}-{st.version:012d}{SNAPSHOT_SUFFIX}"
        doc = {
            "series": st.sid,
            "version": st.version,
            "points": st.points,
            "base_weights": self.model.meta.get("weights_sha256"),
            "learned": learned,
        }
        write_sealed(final, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, doc, tensors)
        sync_dir(self.snap_dir)
        st.snapshot_version = st.version
        for old in self.snap_dir.glob(f"{key}-*"):
            if old != final:
                _discard(old)

    def _load_snapshot(self, st: SeriesState, path: Path) -> Forecaster:
        if path.is_dir():  # a whole saved forecaster: the layout of earlier elman versions
            return Forecaster.load(path)
        doc, tensors = read_sealed(path, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, SNAPSHOT_WHAT)
        if doc.get("base_weights") != self.model.meta.get("weights_sha256"):
            raise CheckpointError(
                f"{path}: a snapshot of another model (weights {doc.get('base_weights')}); "
                "use another --state"
            )
        f = self.model.forecaster_for(st.sid)
        return f.load_learned_state(tensors, doc.get("learned") or {}, str(path))

    # ------------------------------------------------------------------ start-up
    def replay(self) -> int:
        """Load the snapshots, apply the log after them, compact; returns records applied."""
        self.snap_dir.mkdir(parents=True, exist_ok=True)
        for sid, (info, path) in self._latest_snapshots().items():
            st = self.state(sid)
            st.forecaster = self._load_snapshot(st, path)
            st.version = st.snapshot_version = int(info["version"])
            st.points = int(info["points"])
        records, length = read_log(self.log_path)
        applied = set()
        for n, rec in enumerate(records, start=1):
            st = self.state(str(rec["s"]))
            version = int(rec["v"])
            if version <= st.version:
                continue  # already in the snapshot
            if version != st.version + 1:
                raise CheckpointError(
                    f"{self.log_path}: record {n} has version {version} of series '{st.sid}', "
                    f"but the state is at {st.version}; a record is missing (restore the file)"
                )
            old = self.forecaster(st).series[0]
            self.apply(st, stamps(rec["t"], old.index, TIME), np.array(rec["x"], np.float64))
            applied.add(st.sid)
        for sid in sorted(applied):
            self.snapshot(self.series[sid])
        if length or self.log_path.exists():  # everything is in the snapshots now
            with open(self.log_path, "wb") as fh:
                os.fsync(fh.fileno())
        configure_threads(1)
        self.replayed = len(records)
        return self.replayed

    def _latest_snapshots(self) -> dict[str, tuple[dict[str, Any], Path]]:
        latest: dict[str, tuple[dict[str, Any], Path]] = {}
        for path in sorted(self.snap_dir.iterdir()):
            if path.name.startswith("."):  # a snapshot being written or removed at a crash
                _remove(path)
                continue
            info = _snapshot_info(path)
            sid = str(info["series"])
            if sid not in latest or info["version"] > latest[sid][0]["version"]:
                latest[sid] = (info, path)
        return latest


def _snapshot_info(path: Path) -> dict[str, Any]:
    """Series id, version and points of a snapshot (a file, or an older layout's directory)."""
    try:
        if path.is_dir():
            info = json.loads((path / SERVE_SNAPSHOT_INFO).read_text(encoding="utf-8"))
        else:
            info = read_document(path, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, SNAPSHOT_WHAT)
        version, points = int(info["version"]), int(info["points"])
        return {"series": str(info["series"]), "version": version, "points": points}
    except (OSError, ValueError, KeyError, TypeError, CheckpointError) as exc:
        raise CheckpointError(f"{path}: not a snapshot ({exc}); remove it") from exc


def _discard(path: Path) -> None:
    """Remove a snapshot: renamed away first (one atomic step), then deleted."""
    if not path.exists():
        return
    gone = path.with_name(f".old-{path.name}")
    os.rename(path, gone)
    _remove(gone)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"--state '{path}' is not writable ({exc.strerror or exc}); give a directory "
            "elman may write to"
        ) from exc
