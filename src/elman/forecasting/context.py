"""The series tail saved with a model, its forecasting context: to JSON and back.

``Forecaster.save`` stores the last ``lookback`` rows of each training series as a tensor
``context.{i}`` and its index and column roles as JSON (:func:`series_schema`);
``Forecaster.load`` rebuilds the series from both (:func:`series_from_schema`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from elman.data.series import Series
from elman.errors import CheckpointError


def series_schema(tail: Series) -> dict[str, Any]:
    """JSON-safe description of a saved series tail (its values are stored as a tensor)."""
    idx = tail.index
    kind = (
        "period"
        if isinstance(idx, pd.PeriodIndex)
        else "datetime"
        if isinstance(idx, pd.DatetimeIndex)
        else "int"
    )
    return {
        "index": [str(v) for v in idx],
        "index_name": idx.name,
        "index_kind": kind,
        "freq": tail.freq,
        "targets": tail.targets,
        "covariates": tail.covariates,
        "future_covariates": tail.future_covariates,
        "series_id": tail.series_id,
        "season": tail.season,
        "source": tail.source,
        "category": tail.category,
    }


def series_from_schema(
    sch: dict[str, Any], tensors: dict[str, torch.Tensor], i: int, where: str
) -> Series:
    """Rebuild saved series tail ``i`` from its schema and the ``context.{i}`` tensor."""
    values = tensors.get(f"context.{i}")
    if values is None:
        raise CheckpointError(f"{where}: missing tensor 'context.{i}'")
    kind, raw = sch["index_kind"], sch["index"]
    idx: pd.Index
    if kind == "period":
        idx = pd.PeriodIndex(raw, freq=sch["freq"])
    elif kind == "datetime":
        idx = pd.DatetimeIndex(raw)
    else:
        idx = pd.Index([int(v) for v in raw])
    idx = idx.rename(sch.get("index_name"))
    return Series(
        values=values.double().numpy(),
        index=idx,
        targets=sch["targets"],
        covariates=sch["covariates"],
        future_covariates=sch["future_covariates"],
        freq=sch["freq"],
        series_id=sch["series_id"],
        source=sch["source"],
        season=sch["season"],
        category=sch.get("category"),
    )
