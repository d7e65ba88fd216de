"""Reading points from a stream and writing one row per point, with exact byte positions.

Input: either one number per line, or CSV rows (comma, semicolon or tab) with a header
naming a target column and optionally a time column. The format is decided by the first
non-blank line: a number starts a plain stream, anything else is a CSV header. Only
complete lines (ending in a newline) are read while a file may still grow; at the end of a
finished stream a last line without a newline is read too.

Output: CSV (``index,time,value,prediction,error,running_mae,anomaly``; ``time`` only when
the input has a time column) or JSON lines with the same keys. Rows are buffered and
written in blocks; :attr:`RowWriter.position` is the byte length of the file once flushed,
which a checkpoint records so that a restart can cut off rows written after it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from elman.data.stamps import guess_time_column
from elman.errors import CheckpointError, ConfigError, clip, quote

FORMATS = ("csv", "jsonl")
BLOCK = 1 << 16  # bytes read at once


@dataclass(frozen=True)
class PointFormat:
    """How values and times are written: ``--decimal``, ``--thousands``, ``--dayfirst``,
    ``--date-format``."""

    decimal: str = "."
    thousands: str | None = None
    dayfirst: bool = False
    date_format: str | None = None

    def number(self, raw: str) -> str:
        """``raw`` with the thousands separators left out and a ``.`` decimal mark."""
        if self.thousands is not None:
            raw = raw.replace(self.thousands, "")
        return raw.replace(self.decimal, ".") if self.decimal != "." else raw


PLAIN = PointFormat()


class BadPoint(Exception):
    """A line that cannot be used as a point; the message says why."""


class Interrupted(Exception):
    """Raised by a signal handler to end a blocking read."""


@dataclass
class Columns:
    """How input lines map to points (decided by the first non-blank line)."""

    mode: str  # "numbers" or "csv"
    header: list[str] | None = None
    header_line: str | None = None
    delimiter: str = ","
    value: int = 0  # index of the target column
    time: int | None = None  # index of the time column
    target_name: str = "value"
    time_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for a checkpoint."""
        return dict(self.__dict__)


def sniff_columns(line: str, target: str | None, time_col: str | None) -> Columns:
    """Decide the input format from its first non-blank line."""
    text = line.strip()
    if target is None and time_col is None and _is_number(text):
        return Columns(mode="numbers")
    delim = max((",", ";", "\t"), key=text.count) if any(d in text for d in ",;\t") else ","
    header = [c.strip() for c in next(csv.reader([text], delimiter=delim))]
    names = clip(", ".join(header))
    if time_col is not None and time_col not in header:
        raise ConfigError(
            f"--time-col '{time_col}' is not a column of the input (columns: {names})"
        )
    tcol = time_col if time_col is not None else guess_time_column(header)
    if target is None:
        rest = [c for c in header if c != tcol]
        if len(rest) != 1:
            raise ConfigError(
                f"the input has columns {names}; choose the value column with --target"
            )
        target = rest[0]
    if target not in header:
        raise ConfigError(f"--target '{target}' is not a column of the input (columns: {names})")
    return Columns(
        mode="csv", header=header, header_line=text, delimiter=delim,
        value=header.index(target), time=None if tcol is None else header.index(tcol),
        target_name=target, time_name=tcol,
    )  # fmt: skip


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_point(text: str, cols: Columns, fmt: PointFormat = PLAIN) -> tuple[float, str | None]:
    """``(value, time text)`` of one line, or :class:`BadPoint`."""
    if not text.strip():
        raise BadPoint("the line is blank (a missing value)")
    if cols.mode == "numbers":
        raw, stamp = text.strip(), None
    else:
        fields = (
            next(csv.reader([text], delimiter=cols.delimiter))
            if '"' in text
            else text.split(cols.delimiter)
        )
        assert cols.header is not None
        if len(fields) != len(cols.header):
            raise BadPoint(f"it has {len(fields)} fields, the header has {len(cols.header)}")
        raw = fields[cols.value].strip()
        stamp = fields[cols.time].strip() if cols.time is not None else None
    if not raw:
        raise BadPoint("the value is missing")
    try:
        value = float(fmt.number(raw))
    except ValueError:
        raise BadPoint(f"{quote(raw)} is not a number{_number_hint(raw, fmt)}") from None
    if not math.isfinite(value):
        raise BadPoint(f"the value {quote(raw)} is not finite")
    return value, stamp


def _number_hint(raw: str, fmt: PointFormat) -> str:
    if fmt is PLAIN and any(c.isdigit() for c in raw) and ("," in raw):
        return " (for a decimal comma use --decimal ',', for 1,502.5 use --thousands ',')"
    return ""


def time_key(stamp: str, fmt: PointFormat = PLAIN) -> tuple[str, Any]:
    """A comparable key of a time stamp: a number or a datetime (BadPoint if neither)."""
    if not stamp:
        raise BadPoint("the time is missing")
    try:
        return "number", float(stamp)
    except ValueError:
        pass
    if fmt.date_format is not None:
        try:
            return "datetime", datetime.strptime(stamp, fmt.date_format)
        except ValueError:
            raise BadPoint(
                f"time {quote(stamp)} does not match --date-format {fmt.date_format}"
            ) from None
    try:
        return "datetime", datetime.fromisoformat(stamp)
    except ValueError:
        pass
    try:
        ts = pd.to_datetime(stamp, dayfirst=fmt.dayfirst)
    except (ValueError, TypeError, OverflowError):
        raise BadPoint(f"time {quote(stamp)} is neither a number nor a date") from None
    if ts is pd.NaT:
        raise BadPoint("the time is missing")
    return "datetime", ts.to_pydatetime()


def check_order(
    stamp: str, last: tuple[str, Any] | None, fmt: PointFormat = PLAIN
) -> tuple[str, Any]:
    """The key of ``stamp``, which must come after ``last`` (BadPoint otherwise)."""
    key = time_key(stamp, fmt)
    if last is None:
        return key
    if key[0] != last[0]:
        raise BadPoint(f"time {quote(stamp)} is a {key[0]}, earlier times were {last[0]}s")
    try:
        later = key[1] > last[1]
    except TypeError:
        raise BadPoint(f"time {quote(stamp)} cannot be compared with the previous time") from None
    if not later:
        raise BadPoint(f"time {quote(stamp)} is not after the previous point's time")
    return key


class LineReader:
    """Complete lines of a file or of stdin, with the byte offset after each.

    Args:
        path: a file path, or ``-`` for stdin.
        follow: at the end of a regular file, wait for more lines instead of stopping.
        poll: seconds between checks while following.
        should_stop: called while waiting; ``True`` ends the stream.
    """

    def __init__(
        self, path: str, follow: bool, poll: float, should_stop: Callable[[], bool]
    ) -> None:
        self.path, self.poll, self.should_stop = path, poll, should_stop
        self.stdin = path == "-"
        self.fd = sys.stdin.fileno() if self.stdin else _open_input(path)
        mode = os.fstat(self.fd).st_mode
        self.seekable = stat.S_ISREG(mode)
        self.follow = follow and self.seekable
        self.offset = 0  # bytes consumed (complete lines handed out)
        self.line_start = 0  # offset of the last line handed out
        self.idle: Callable[[], None] = lambda: None  # called before waiting for input
        self.blocking = False  # inside a read that may wait (a signal may interrupt it)

    def seek(self, offset: int) -> None:
        """Continue after ``offset`` bytes (regular files only)."""
        size = os.fstat(self.fd).st_size
        if offset > size:
            raise CheckpointError(
                f"--input '{self.path}' has {size} bytes, fewer than the {offset} already "
                "processed; is it the same file? (use --overwrite to start over)"
            )
        os.lseek(self.fd, offset, os.SEEK_SET)
        self.offset = self.line_start = offset

    def lines(self) -> Iterator[bytes]:
        """Yield lines (without the newline); :attr:`offset` follows each one."""
        pending = b""
        while True:
            chunk = self._read()
            if chunk is None:
                break
            if not chunk:
                if self.follow and not self.should_stop():
                    self.idle()
                    time.sleep(self.poll)
                    continue
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                self.line_start = self.offset
                self.offset += len(line) + 1
                yield line
        if pending and not self.follow:
            self.line_start = self.offset
            self.offset += len(pending)
            yield pending

    def _read(self) -> bytes | None:
        if self.should_stop():
            return None
        if not self.follow:
            self.idle()  # a pipe may block here: flush what is done first
        self.blocking = True
        try:
            return os.read(self.fd, BLOCK)
        except (Interrupted, InterruptedError):
            return None
        finally:
            self.blocking = False

    def close(self) -> None:
        """Close the file (never stdin)."""
        if not self.stdin:
            os.close(self.fd)


def _open_input(path: str) -> int:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--input '{path}' is a directory; give a file, or - for stdin")
    try:
        return os.open(p, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigError(f"--input '{path}' does not exist") from None
    except OSError as exc:
        raise ConfigError(f"--input '{path}' cannot be read: {exc.strerror}") from None


class RowWriter:
    """Buffered CSV / JSON-lines rows to a file (or stdout), with the flushed byte length.

    Args:
        path: output file, or ``None`` for stdout.
        fmt: ``csv`` or ``jsonl``.
        resume_at: byte length to cut the existing file back to (a checkpoint's record);
            ``None`` starts a new file.
    """

    def __init__(self, path: Path | None, fmt: str, resume_at: int | None) -> None:
        self.path, self.fmt = path, fmt
        self.rows: list[str] = []
        self.header_done = resume_at is not None and resume_at > 0
        self.fh: IO[bytes]
        if path is None:
            self.fh = sys.stdout.buffer
            self.position = 0
            return
        if resume_at is None:
            self.fh = open(path, "wb")  # noqa: SIM115 (closed by close())
            self.position = 0
            return
        size = path.stat().st_size if path.exists() else -1
        if size < resume_at:
            raise CheckpointError(
                f"--output '{path}' is shorter ({max(size, 0)} bytes) than the checkpoint "
                f"records ({resume_at}); it was changed since; use --overwrite to start over"
            )
        self.fh = open(path, "r+b")  # noqa: SIM115
        self.fh.truncate(resume_at)
        self.fh.seek(resume_at)
        self.position = resume_at

    def header(self, time_name: str | None) -> None:
        """Write the CSV header once (nothing for JSON lines)."""
        if self.header_done:
            return
        self.header_done = True
        if self.fmt == "csv":
            cols = ["index", *(["time"] if time_name else []), "value", "prediction", "error",
                    "running_mae", "anomaly"]  # fmt: skip
            self.rows.append(",".join(cols) + "\n")

    def add(
        self, index: int, stamp: str | None, value: float, pred: float | None,
        mae: float | None, anomaly: bool,
    ) -> None:  # fmt: skip
        """Buffer one row."""
        if self.fmt == "jsonl":
            rec: dict[str, Any] = {"index": index}
            if stamp is not None:
                rec["time"] = stamp
            rec.update(
                value=value, prediction=pred, error=None if pred is None else value - pred,
                running_mae=mae, anomaly=anomaly,
            )  # fmt: skip
            self.rows.append(json.dumps(rec) + "\n")
            return
        t = "" if stamp is None else (_csv_cell(stamp) + ",")
        if pred is None:
            self.rows.append(f"{index},{t}{value!r},,,,0\n")
        else:
            self.rows.append(
                f"{index},{t}{value!r},{pred:.9g},{value - pred:.9g},{mae:.9g},{int(anomaly)}\n"
            )

    def flush(self, sync: bool = False) -> None:
        """Write the buffered rows; with ``sync``, also to the disk."""
        if self.rows:
            data = "".join(self.rows).encode("utf-8")
            self.rows.clear()
            self.fh.write(data)
            self.position += len(data)
        self.fh.flush()
        if sync and self.path is not None:
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        """Flush and close (never stdout)."""
        self.flush(sync=self.path is not None)
        if self.path is not None:
            self.fh.close()


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def check_state_dir(path: Path | None) -> Path | None:
    """``--state``: not a file, and its parent folder exists."""
    if path is None:
        return None
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--state '{path}' is a file; give a directory")
    if not path.parent.exists():
        raise ConfigError(f"--state '{path}': folder '{path.parent}' does not exist")
    return path  # created by the first checkpoint
