"""Request bodies of the HTTP service: JSON or CSV in, checked tables out.

A table is columnar: ``{"time": [...], "value": [...]}``, one list per column, the same
length each. Several series travel in one table with a ``series`` column, or stacked with
``sizes`` (and ``ids``) as in TimeGPT's columnar form. A CSV body is the same table with a
header row. Every problem becomes an :class:`ApiError`: an HTTP status and one line that
names the field, and nothing else happens.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elman.errors import ConfigError

JSON_TYPES = ("application/json", "")
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
TIME = "time"  # the time column of every table
SERIES = "series"  # the series id column of a table of several series


class ApiError(Exception):
    """A refused request: ``status``, one line of ``message``, and the ``field`` at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def to_json(self) -> dict[str, Any]:
        """The response body."""
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True)
class Limits:
    """What one request may carry; each excess is answered with 413 or 400 naming the limit."""

    max_body: int = 1 << 20  # bytes of one request body (--max-body)
    max_series: int = 1000  # series in one request (--max-series)
    max_points: int = 100_000  # rows of one request (--max-points)
    max_horizon: int = 1000  # steps of one forecast (--max-horizon), below the model's own limit

    def __post_init__(self) -> None:
        for name in ("max_body", "max_series", "max_points", "max_horizon"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} ({getattr(self, name)}) must be >= 1"
                )


def parse_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The body as a JSON object; a CSV body becomes ``{"table": {column: [text, ...]}}``."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in CSV_TYPES:
        return {"table": read_csv(raw)}
    if kind not in JSON_TYPES:
        raise ApiError(
            415,
            f"content type '{kind}' is not accepted; send application/json or text/csv",
            "content-type",
        )
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 text (byte {exc.start})", "body") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            "body",
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, got {type(body).__name__}", "body")
    return body


def _refuse_constant(name: str) -> float:
    raise ApiError(400, f"the body holds {name}, which is not a number JSON allows", "body")


def read_csv(raw: bytes) -> dict[str, list[Any]]:
    """A CSV body as columns of text (a header row, then one row per point)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the CSV body is not UTF-8 text (byte {exc.start})", "body") from exc
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ApiError(
            400, "the CSV body is empty; send a header row and one row per point", "body"
        )
    header = [c.strip() for c in rows[0]]
    columns: dict[str, list[Any]] = {name: [] for name in header}
    if len(columns) != len(header):
        raise ApiError(400, "the CSV header names a column twice", "body")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ApiError(
                400, f"CSV line {n} has {len(row)} fields, the header has {len(header)}", "body"
            )
        for name, cell in zip(header, row, strict=True):
            columns[name].append(cell.strip())
    return columns


def table_of(body: Mapping[str, Any], key: str, limits: Limits) -> dict[str, list[Any]]:
    """``body[key]``: a columnar table, each column a list of the same length.

    ``sizes`` (and optionally ``ids``) next to the table stack several series: the first
    ``sizes[0]`` rows are the first series, and so on; they fill the ``series`` column.
    """
    table = body.get(key)
    if not isinstance(table, dict) or not table:
        raise ApiError(
            400,
            f'\'{key}\' must be an object of columns, e.g. {{"time": [...], "value": [...]}}',
            key,
        )
    lengths = set()
    for name, col in table.items():
        if not isinstance(col, list):
            raise ApiError(400, f"column '{name}' must be a list", f"{key}.{name}")
        lengths.add(len(col))
    if len(lengths) != 1:
        raise ApiError(400, f"the columns of '{key}' differ in length ({sorted(lengths)})", key)
    rows = lengths.pop()
    if rows == 0:
        raise ApiError(400, f"'{key}' has no rows", key)
    if rows > limits.max_points:
        raise ApiError(
            413,
            f"'{key}' has {rows} rows, above the limit of {limits.max_points} (--max-points)",
            key,
        )
    table = dict(table)
    if "sizes" in body:
        table[SERIES] = _stacked_ids(body, rows)
    if SERIES in table and len(set(map(str, table[SERIES]))) > limits.max_series:
        raise ApiError(
            413, f"'{key}' holds more than {limits.max_series} series (--max-series)", SERIES
        )
    return table


def _stacked_ids(body: Mapping[str, Any], rows: int) -> list[str]:
    sizes = body["sizes"]
    if not isinstance(sizes, list) or not all(_is_int(s) and s > 0 for s in sizes):
        raise ApiError(400, "'sizes' must be a list of positive whole numbers", "sizes")
    if sum(sizes) != rows:
        raise ApiError(
            400, f"'sizes' add up to {sum(sizes)}, but the table has {rows} rows", "sizes"
        )
    ids = body.get("ids", [str(i) for i in range(len(sizes))])
    if not isinstance(ids, list) or len(ids) != len(sizes):
        raise ApiError(400, f"'ids' must be a list of {len(sizes)} names, one per size", "ids")
    if len(set(map(str, ids))) != len(ids):
        raise ApiError(400, "'ids' names a series twice", "ids")
    return [str(i) for i, n in zip(ids, sizes, strict=True) for _ in range(n)]


def numbers(column: list[Any], field: str) -> list[float]:
    """A column of finite numbers (JSON numbers, or CSV text that reads as one)."""
    out = []
    for row, cell in enumerate(column):
        if isinstance(cell, bool) or cell is None or not isinstance(cell, (int, float, str)):
            raise ApiError(400, f"{field} row {row}: {cell!r} is not a number", field)
        try:
            value = float(cell)
        except ValueError:
            raise ApiError(400, f"{field} row {row}: {cell!r} is not a number", field) from None
        if not math.isfinite(value):
            raise ApiError(400, f"{field} row {row}: {cell!r} is not a finite number", field)
        out.append(value)
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole(value: Any, field: str, low: int, high: int, limit_name: str) -> int:
    """A whole number in ``[low, high]``; text such as ``"12"`` (a query parameter) is read."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not _is_int(value):
        raise ApiError(400, f"'{field}' must be a whole number, got {value!r}", field)
    if value < low:
        raise ApiError(400, f"'{field}' ({value}) must be >= {low}", field)
    if value > high:
        raise ApiError(400, f"'{field}' ({value}) is above {limit_name} ({high})", field)
    return int(value)


def flag(value: Any, field: str) -> bool:
    """A yes/no option given as JSON true/false or as query text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no", ""):
        return value.lower() in ("1", "true", "yes")
    raise ApiError(400, f"'{field}' must be true or false, got {value!r}", field)
