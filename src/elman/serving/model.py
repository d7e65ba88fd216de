"""The served model: the run's forecaster, its column roles, and tables turned into series.

One :class:`ServedModel` per server. Stateless forecasts use its :attr:`base` forecaster
with the history from the request; each series the server holds gets its own forecaster
(:meth:`forecaster_for`), loaded from the run directory, because online learning changes a
forecaster's weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from elman._version import __version__
from elman.data.prepare import load_series
from elman.data.series import Series
from elman.errors import CheckpointError, ElmanError
from elman.files import META, WEIGHTS
from elman.forecaster import Forecaster
from elman.forecasting.intervals import parse_levels
from elman.serving.tables import SERIES, TIME, ApiError, Limits, numbers, whole

DEFAULT_ID = "default"  # the id of the only series of a run trained on one series without ids


def series_id(s: Series) -> str:
    """The id a series has in URLs: its id in the data, or ``default``."""
    return DEFAULT_ID if s.series_id is None else str(s.series_id)


class ServedModel:
    """A run directory loaded for serving (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        if not (self.run_dir / WEIGHTS).is_file():
            raise CheckpointError(
                f"RUN_DIR '{run_dir}' holds no {WEIGHTS}; give a directory written by "
                "'elman train' or Forecaster.save"
            )
        self.base = Forecaster.load(self.run_dir)
        self.meta = json.loads((self.run_dir / META).read_text(encoding="utf-8"))
        # the files as the server loaded them: each held series starts from these bytes
        # (kept in the state directory), even if the run directory is retrained meanwhile
        self.files = {name: (self.run_dir / name).read_bytes() for name in (WEIGHTS, META)}
        self.file_digests = {
            name: "sha256:" + hashlib.sha256(data).hexdigest() for name, data in self.files.items()
        }
        self.source = self.run_dir  # where forecaster_for loads from
        first = self.base.series[0]
        self.targets, self.covariates = list(first.targets), list(first.covariates)
        self.future = list(self.base.config.data.future_covariates)
        self.observed = self.targets + self.covariates  # columns of new observations
        self.dated = isinstance(first.index, (pd.PeriodIndex, pd.DatetimeIndex))
        self.ids = [series_id(s) for s in self.base.series]
        self._position = {sid: i for i, sid in enumerate(self.ids)}

    # ------------------------------------------------------------------ the model card
    def card(self) -> dict[str, Any]:
        """What ``GET /v1/model`` answers."""
        cfg, p = self.base.config, self.base.predictor
        data = self.meta.get("data", {})
        return {
            "model": cfg.model.model,
            "strategy": cfg.model.strategy,
            "horizon": p.sizes.horizon,
            "lookback": p.sizes.lookback,
            "frequency": self.base.series[0].freq,
            "season": p.sizes.season,
            "targets": self.targets,
            "covariates": self.covariates,
            "future_covariates": self.future,
            "calendar": cfg.data.calendar,
            "series": len(self.ids),
            "trained_range": [data.get("first_timestamp"), data.get("last_timestamp")],
            "source": data.get("source"),
            "intervals": self.base.calibration is not None,
            "online_learning": p.layout.n_future == 0,
            "digests": {**self.file_digests, "weights_sha256": self.meta.get("weights_sha256")},
            "elman_version": __version__,
            "trained_with": self.meta.get("elman_version"),
        }

    def horizon_limit(self, limits: Limits) -> tuple[int, str]:
        """The largest horizon a request may ask for, and the name of that limit."""
        p = self.base.predictor
        if p.direct and p.sizes.horizon <= limits.max_horizon:
            return p.sizes.horizon, "the model's trained horizon"
        return limits.max_horizon, "the server's --max-horizon"

    def horizon(self, value: Any, limits: Limits) -> int:
        """The requested horizon, checked; the trained one when none is asked for."""
        if value is None:
            return self.base.predictor.sizes.horizon
        high, name = self.horizon_limit(limits)
        return whole(value, "horizon", 1, high, name)

    @staticmethod
    def levels(value: Any) -> tuple[int, ...]:
        """Interval levels such as ``[80, 95]`` or ``"80,95"``; none when not asked for."""
        if value is None or value == "":
            return ()
        try:
            return parse_levels(
                value if isinstance(value, (str, list)) else str(value), "intervals"
            )
        except ElmanError as exc:
            raise ApiError(400, str(exc), "intervals") from exc

    # ------------------------------------------------------------------ series
    def position(self, sid: str) -> int:
        """Where series ``sid`` sits in the run's data; 404 for an id the run never saw."""
        try:
            return self._position[sid]
        except KeyError:
            known = ", ".join(self.ids[:5]) + (", ..." if len(self.ids) > 5 else "")
            raise ApiError(
                404, f"unknown series '{sid}'; this model serves: {known}", "series"
            ) from None

    def forecaster_for(self, sid: str) -> Forecaster:
        """A forecaster of series ``sid`` alone, as the run left it."""
        f = Forecaster.load(self.source)
        f.series = [f.series[self.position(sid)]]
        return f

    def history(self, table: dict[str, list[Any]], field: str) -> list[Series]:
        """A history table from a request as series, read as training read its data."""
        self._check_columns(table, self.targets + self.covariates + self.future, field)
        frame = pd.DataFrame(
            {
                name: numbers(table[name], f"{field}.{name}")
                for name in self.targets + self.covariates + self.future
            }
        )
        if TIME in table:
            frame.insert(0, TIME, [str(t) for t in table[TIME]])
        elif self.dated:
            raise ApiError(
                400,
                f"'{field}' needs a '{TIME}' column: the model was trained on "
                f"time stamps ({self.base.series[0].freq})",
                f"{field}.{TIME}",
            )
        if SERIES in table:
            frame.insert(0, SERIES, [str(s) for s in table[SERIES]])
        cfg = dataclasses.replace(
            self.base.config.data,
            source=None,
            time_col=TIME if TIME in table else None,
            series_id=SERIES if SERIES in table else None,
            target=tuple(self.targets),
            covariates=tuple(self.covariates),
            future_covariates=tuple(self.future),
        )
        try:
            return self.base.series_for(load_series(frame, cfg, constant_ok=True))
        except ElmanError as exc:
            raise ApiError(400, f"{field}: {exc}", field) from exc

    def future_table(self, table: dict[str, list[Any]] | None) -> pd.DataFrame | None:
        """Future covariate values from a request, as ``Forecaster.predict(future=)`` takes them."""
        if not self.future:
            return None
        if table is None:
            raise ApiError(
                400,
                f"'future' is needed: the model reads future covariates "
                f"{self.future} for the forecast steps",
                "future",
            )
        self._check_columns(table, self.future, "future", extra=(SERIES, TIME))
        frame = pd.DataFrame({n: numbers(table[n], f"future.{n}") for n in self.future})
        if SERIES in table:
            frame.insert(0, SERIES, [str(s) for s in table[SERIES]])
        return frame

    def _check_columns(
        self,
        table: dict[str, list[Any]],
        need: list[str],
        field: str,
        extra: tuple[str, ...] = (TIME, SERIES),
    ) -> None:
        for name in need:
            if name not in table:
                raise ApiError(
                    400,
                    f"'{field}' has no column '{name}'; the model reads {', '.join(need)}",
                    f"{field}.{name}",
                )
        for name in table:
            if name not in need and name not in extra:
                raise ApiError(
                    400,
                    f"'{field}' has a column '{name}' the model does not read "
                    f"(it reads {', '.join(need)})",
                    f"{field}.{name}",
                )


def stamps(values: list[Any], like: pd.Index, field: str) -> pd.Index:
    """Time stamps from a request, of the same kind as the index ``like`` continues."""
    try:
        if isinstance(like, pd.PeriodIndex):
            return pd.PeriodIndex([pd.Period(str(v), freq=like.freqstr) for v in values])
        if isinstance(like, pd.DatetimeIndex):
            return pd.DatetimeIndex(
                pd.to_datetime([str(v) for v in values], utc=like.tz is not None)
            )
        return pd.Index([whole(v, field, -(2**62), 2**62, "the integer range") for v in values])
    except (ValueError, TypeError, OverflowError) as exc:
        raise ApiError(
            400, f"'{field}' holds a value that is not a time stamp ({exc})", field
        ) from exc


def observations(
    table: dict[str, list[Any]], columns: list[str], old: Series, index: pd.Index | None = None
) -> tuple[pd.Index, np.ndarray]:
    """New points of one series: their stamps and values ``[T, C]``, checked.

    ``index``: the stamps, when the caller already knows them (see ``Store.prepare``).
    """
    for name in columns:
        if name not in table:
            raise ApiError(
                400,
                f"'observations' has no column '{name}'; send {', '.join([TIME, *columns])}",
                name,
            )
    for name in table:
        if name not in columns and name != TIME:
            raise ApiError(
                400,
                f"'observations' has a column '{name}' the model does not read "
                f"(send {', '.join([TIME, *columns])})",
                name,
            )
    if TIME not in table:
        raise ApiError(
            400,
            f"'observations' needs a '{TIME}' column: updates are matched "
            "by time stamp, so that a repeated request changes nothing",
            TIME,
        )
    if index is None:
        index = stamps(table[TIME], old.index, TIME)
    values = np.array([numbers(table[n], n) for n in columns], np.float64).T  # [T, C]
    return index, values


def to_columns(table: pd.DataFrame) -> dict[str, list[Any]]:
    """A forecast table as JSON columns: ``time``, then ``series`` (several), then values."""
    out: dict[str, list[Any]] = {TIME: [str(t) for t in table.index]}
    for name in table.columns:
        col = table[name]
        if col.dtype.kind == "f":
            out[str(name)] = [None if not math.isfinite(v) else v for v in col.tolist()]
        else:
            out[str(name)] = [str(v) for v in col.tolist()]
    return out
