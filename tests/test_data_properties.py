"""Property tests: readers never leak a non-Elman exception; windows keep their invariants."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elman.data import Series, read_series
from elman.errors import ElmanError

CELLS = st.one_of(
    st.sampled_from(["", "NA", "nan", "inf", "-inf", "1e400", "abc", "1,5", "  ", "null", "0"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(
        [
            "2024-01-01",
            "2024-01-02",
            "2024-01-03",
            "2024-01-08",
            "1959Q1",
            "1949-01",
            "1700",
            "24:00",
            "2024-13-45",
        ]
    ),
    st.text(max_size=6),
)
HEADERS = st.lists(
    st.sampled_from(["date", "value", "y", "price", "week", "t", "x;y", "", "1"]),
    min_size=1,
    max_size=4,
)
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_result(found: list[Series]) -> None:
    assert found
    for series in found:
        assert len(series) >= 1 and len(series.index) == len(series)
        assert np.isfinite(series.values).all()


@SETTINGS
@given(
    header=HEADERS,
    rows=st.lists(st.lists(CELLS, min_size=1, max_size=4), max_size=8),
    sep=st.sampled_from([",", ";", "\t"]),
    missing=st.sampled_from(["error", "interpolate", "ffill", "drop"]),
    calendar=st.booleans(),
)
def test_reader_returns_series_or_elman_error(header, rows, sep, missing, calendar) -> None:
    text = sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            found = read_series(path, missing=missing, calendar=calendar)
        except ElmanError:
            return
    check_result(found)


@SETTINGS
@given(blob=st.binary(max_size=300))
def test_reader_survives_arbitrary_bytes(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_bytes(blob)
        try:
            found = read_series(path)
        except ElmanError:
            return
    check_result(found)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 20),
    duplicate=st.booleans(),
    huge=st.booleans(),
    holes=st.lists(st.integers(0, 19), max_size=5),
)
def test_dated_csv_variants(n: int, duplicate: bool, huge: bool, holes: list[int]) -> None:
    days = [f"2024-01-{d + 1:02d}" for d in range(20) if d not in holes][:n]
    if duplicate and days:
        days.append(days[-1])
    values = [("1e308" if huge else str(i * 1.5)) for i in range(len(days))]
    text = "date,value\n" + "".join(f"{d},{v}\n" for d, v in zip(days, values, strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_text(text)
        try:
            found = read_series(path, missing="interpolate")
        except ElmanError:
            return
    check_result(found)
    # daily stamps with holes: "D", or a multiple such as "2D" when every kept gap is even
    assert found[0].freq is None or found[0].freq.endswith("D")
