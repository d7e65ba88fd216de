"""Data files -> a raw DataFrame plus the file row of each frame row.

CSV/TSV/TXT and Parquet. Every problem ends in one :class:`~elman.errors.DataError` naming
the file and saying how to fix it; no pandas or pyarrow exception escapes.

Blank lines: a blank or whitespace-only line inside a text file is a row whose cells are all
missing (it is not dropped, so no later value moves up a step and row numbers stay the line
numbers). :func:`blank_rows` finds such rows; the reader decides what they mean under the
``missing`` policy. Blank lines before the header and after the last data row carry no data
and are left out. Entirely empty columns named ``Unnamed: N`` (the empty trailing columns a
spreadsheet writes) are dropped.

Encoding: UTF-8 (with or without a byte-order mark) or UTF-16 with a byte-order mark.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from elman.config import check_number_marks
from elman.data.stamps import as_text
from elman.errors import DataError, clip, quote

logger = logging.getLogger(__name__)

SUFFIXES: dict[str, str | None] = {
    ".csv": ",",
    ".txt": ",",
    ".tsv": "\t",
    ".parquet": None,
    ".pq": None,
}
"""Supported file suffixes and their delimiter (``None`` = Parquet)."""

_HEADER_ROW = 1  # the header is row 1; the first data row is row 2


@dataclass(frozen=True)
class TextOptions:
    """How to read a text file's fields (see :class:`elman.config.DataConfig`)."""

    sep: str | None = None  # field delimiter; None = from the suffix
    decimal: str = "."  # decimal mark of numbers
    thousands: str | None = None  # thousands separator of numbers, None = none

    def __post_init__(self) -> None:
        check_number_marks(self.decimal, self.thousands, self.sep)


_GROUPED_RE = r"[+-]?\d{1,3}([,.' ])\d{3}(?:\1\d{3})*(?:([.,])\d+)?"


def number_hint(text: str) -> str:
    """How to fix a cell that is not a number: the option that reads a decimal comma or
    thousands separators (``1502,51``, ``1,502,514.60``, ``1.502.514,60``), else the cell."""
    grouped = re.fullmatch(_GROUPED_RE, text)
    if grouped is not None and grouped.group(2) != grouped.group(1):
        mark, dec = grouped.group(1), grouped.group(2) or ("." if grouped.group(1) == "," else ",")
        also = " --decimal ','" if dec == "," else ""
        if grouped.group(2) is None and mark == "," and text.count(",") == 1:
            also = " (or --decimal ',' if the comma is the decimal mark)"
        return (
            "it looks like a number with thousands separators: read it with "
            f"--thousands '{mark}'{also}"
        )
    if re.fullmatch(r"[+-]?\d*,\d+", text):
        return "it looks like a number with a decimal comma: read it with --decimal ','"
    return "correct the cell or leave it empty"


def read_file(path: Path, opts: TextOptions) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A data file as a frame with trimmed, unique column names, each row's file row, and
    which rows are blank (see :func:`blank_rows`).

    Raises:
        DataError: unreadable, empty, wrong format, duplicate column names.
    """
    name = str(path)
    if path.is_dir():
        raise DataError(f"{name} is a directory, not a data file; give a .csv or .parquet file")
    if not path.exists():
        raise DataError(f"file not found: {name}; check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"cannot tell the format of {name}: suffix {suffix or '(none)'!r} is not one of "
            f"{', '.join(SUFFIXES)}; rename the file"
        )
    delimiter = SUFFIXES[suffix]
    if delimiter is None:
        frame = clean_columns(_read_parquet(path), name)
        rows = np.arange(len(frame), dtype=np.int64) + _HEADER_ROW + 1
        return frame, rows, np.zeros(len(frame), dtype=bool)
    sep = opts.sep or delimiter
    frame, first = _read_text(path, sep, opts)
    _check_header(frame, name, sep)
    frame = _drop_empty_unnamed(clean_columns(frame, name), name)
    rows = np.arange(len(frame), dtype=np.int64) + first
    blank = blank_rows(frame)
    if blank.any() and blank[-1]:  # blank lines at the end hold nothing and shift nothing
        keep = len(blank) - int(np.argmin(blank[::-1]))
        if not blank.all():
            frame, rows, blank = frame.iloc[:keep], rows[:keep], blank[:keep]
    if frame.shape[0] == 0 or blank.all():
        raise DataError(f"{name} has a header but no data rows")
    return frame, rows, blank


def blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """``[N]`` bool: rows whose cells are all missing or blank (a blank line in a text file).

    Each column is looked at only in the rows still blank, so a full first column ends it.
    """
    blank = np.ones(len(frame), dtype=bool)
    for col in frame.columns:
        idx = np.flatnonzero(blank)
        if idx.size == 0:
            break
        values = frame[col] if idx.size == len(frame) else frame[col].iloc[idx]
        empty = values.isna().to_numpy(dtype=bool, na_value=True)
        text = pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(
            values.dtype
        )
        if text and empty.size and not empty.all():
            empty = empty | (as_text(values) == "").to_numpy(dtype=bool, na_value=True)
        blank[idx] = empty
    return blank


def clean_columns(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Trimmed column names, each used once (a copy of the frame's structure, not its data)."""
    if frame.shape[0] == 0:
        raise DataError(f"{name} has no data rows")
    cols = [str(c).strip() for c in frame.columns]
    seen: set[str] = set()
    for col in cols:
        if col in seen:
            raise DataError(f"column name {quote(col)} appears twice in {name}; rename one of them")
        seen.add(col)
    frame = frame.copy(deep=False)
    frame.columns = pd.Index(cols)
    return frame


def _drop_empty_unnamed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Leave out columns without a name that hold nothing (a spreadsheet's empty columns)."""
    empty = [
        c
        for c in frame.columns
        if str(c).startswith("Unnamed: ") and bool(blank_rows(frame[[c]]).all())
    ]
    if not empty or len(empty) == frame.shape[1]:
        return frame
    logger.info("%s: left out %d empty unnamed column(s)", name, len(empty))
    return frame.drop(columns=empty)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise DataError(
            f"reading {path} needs pyarrow; install it with pip install 'elman[parquet]'"
        ) from err
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises many types; all mean "not a readable file"
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read {path} as Parquet: {detail}") from err


def _encoding(head: bytes, name: str) -> str:
    """``utf-16`` for a UTF-16 byte-order mark, else ``utf-8-sig``; refuses binary data."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"PAR1"):
        raise DataError(f"{name} is a Parquet file; rename it to end in .parquet")
    if b"\x00" in head:
        sample = head[:512]
        if len(sample) >= 4 and (sample[1::2].count(0) > len(sample) // 4 or
                                 sample[0::2].count(0) > len(sample) // 4):  # fmt: skip
            raise DataError(
                f"{name} looks like UTF-16 text without a byte-order mark; save it as UTF-8 "
                f"(for example: iconv -f UTF-16 -t UTF-8 {name} > converted.csv)"
            )
        raise DataError(f"{name} looks like a binary file, not delimited text")
    return "utf-8-sig"


def _leading_blank_lines(head: bytes, encoding: str) -> int:
    text = head.decode(encoding, "replace")
    count = 0
    for line in text.splitlines(keepends=True)[:-1]:  # the last one may be cut short
        if line.strip():
            break
        count += 1
    return count


def _read_text(path: Path, sep: str, opts: TextOptions) -> tuple[pd.DataFrame, int]:
    """The frame, and the file row (line number) of its first data row."""
    name = str(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as err:
        raise DataError(f"cannot open {name}: {err.strerror or err}") from err
    encoding = _encoding(head, name)
    if not head.decode(encoding, "replace").strip("\ufeff \t\r\n"):
        raise DataError(f"{name} is empty; it needs a header row and at least one data row")
    skip = _leading_blank_lines(head, encoding)
    if encoding == "utf-16":
        logger.info("%s: reading UTF-16 text", name)
    try:
        frame = pd.read_csv(
            path, sep=sep, encoding=encoding, low_memory=False, skipinitialspace=True,
            skip_blank_lines=False, skiprows=skip or None, decimal=opts.decimal,
            thousands=opts.thousands,
        )  # fmt: skip
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{name} is empty; it needs a header row and a data row") from err
    except UnicodeError as err:
        at = f" (bad byte at position {err.start})" if isinstance(err, UnicodeDecodeError) else ""
        kind = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise DataError(f"{name} is not {kind} text{at}; save it as UTF-8") from err
    except (pd.errors.ParserError, ValueError, OverflowError, MemoryError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        detail = detail.split("C error: ")[-1].strip()
        raise DataError(
            f"cannot parse {name} as {sep!r}-separated text: {detail[:200]}; check the "
            "delimiter and quoting"
        ) from err
    return frame, skip + _HEADER_ROW + 1


def _check_header(frame: pd.DataFrame, name: str, sep: str) -> None:
    cols = [str(c) for c in frame.columns]
    if len(cols) == 1:
        for other in (";", "\t", "|", ","):
            if other != sep and other in cols[0]:
                raise DataError(
                    f"{name} has a single column {quote(cols[0])} and looks like "
                    f"{other!r}-separated; save it with {sep!r} as the delimiter or use "
                    f"--sep {other!r}"
                )
    if all(_is_number(c) for c in cols):
        raise DataError(
            f"the first line of {name} ({clip(', '.join(cols))}) looks like data, not a "
            "header; add a header row with column names"
        )
    if frame.shape[0] == 0:
        raise DataError(f"{name} has a header but no data rows")


def _is_number(text: str) -> bool:
    try:
        float(text.split(".")[0] if text.count(".") > 1 else text)
    except ValueError:
        return False
    return True
