"""A fitted predictor on disk: ``model.safetensors`` + ``model.json``, written and read back.

:func:`save_predictor` stores the network's weights, the tail of each series (its
forecasting context, :mod:`elman.forecasting.context`), the scalers, sizes, layout,
configuration and calibration; :func:`load_predictor` rebuilds them without running code
from the files (the weights are checked against the model's shapes before they are loaded,
see :mod:`elman.checkpoint`). The online learner's state, when there is one, travels as the
``online.*`` tensors and the ``online`` metadata entry, which the caller interprets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elman.checkpoint import check_state_dict, load_model_files, save_model_files
from elman.config import Config
from elman.data.prepare import Sizes
from elman.data.scaling import Scaler
from elman.data.series import Series
from elman.data.windows import Layout
from elman.errors import CheckpointError, ConfigError, DataError
from elman.forecasting.calibration import Calibration
from elman.forecasting.context import series_from_schema, series_schema
from elman.forecasting.predictor import Predictor
from elman.models.registry import build_model, model_config

ONLINE = "online."  # prefix of the online learner's tensors


@dataclass
class Saved:
    """What a model directory holds, rebuilt."""

    predictor: Predictor
    series: list[Series]  # the stored tail of each series (its last ``lookback`` points)
    calibration: Calibration | None
    online_tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # without the prefix
    online_meta: dict[str, Any] | None = None


def save_predictor(
    directory: str | Path,
    predictor: Predictor,
    series: list[Series],
    calibration: Calibration | None,
    metrics: dict[str, Any],
    extra: dict[str, Any] | None = None,
    online: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (plus ``extra`` JSON) to ``directory``.

    Args:
        directory: created if missing; the two files are replaced atomically.
        predictor: the fitted network and its scalers.
        series: the series to continue from; the last ``lookback`` points of each are kept.
        calibration: interval calibration, or ``None``.
        metrics: the training summary stored under ``metrics``.
        extra: more JSON entries (for example the run's data schema).
        online: the online learner's ``(tensors, metadata)``, if it follows this model.
    """
    model, sizes = predictor.model, predictor.sizes
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    contexts = []
    for i, s in enumerate(series):
        tail = s.tail(sizes.lookback)
        tensors[f"context.{i}"] = torch.from_numpy(np.ascontiguousarray(tail.values))
        contexts.append(series_schema(tail))
    meta = {
        "config": predictor.config.to_dict(),
        "model_config": model_config(model),
        "sizes": asdict(sizes),
        "layout": asdict(predictor.layout),
        "scalers": {k: v.to_dict() for k, v in predictor.scalers.items()},
        "series": contexts,
        "metrics": metrics,
        "calibration": calibration.to_dict() if calibration else None,
    }
    if online is not None:
        online_tensors, meta["online"] = online
        tensors.update({f"{ONLINE}{k}": v for k, v in online_tensors.items()})
    return save_model_files(directory, tensors, {**(extra or {}), **meta})


def load_predictor(directory: str | Path) -> Saved:
    """Rebuild what :func:`save_predictor` wrote; never executes code from the files.

    Raises:
        CheckpointError: a file is missing, corrupt, tampered with, or its metadata is
            incomplete, with the directory named.
    """
    meta, tensors = load_model_files(directory)
    where = str(Path(directory))
    try:
        config = Config.from_dict(meta["config"], source=where)
        mcfg = dict(meta["model_config"])
        with torch.device("meta"):  # shapes only: nothing is allocated before the check
            probe = build_model(**mcfg)
        sizes = Sizes(**meta["sizes"])
        layout = Layout(**meta["layout"])
        scalers = {k: Scaler.from_dict(v) for k, v in meta["scalers"].items()}
        schemas = list(meta["series"])
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"{where}: metadata is incomplete or invalid ({exc})") from exc
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(probe.state_dict(), weights, where)
    model = build_model(**mcfg)
    model.load_state_dict(weights)
    predictor = Predictor(model.eval(), sizes, layout, scalers, config)
    try:
        series = [series_from_schema(s, tensors, i, where) for i, s in enumerate(schemas)]
    except (KeyError, TypeError, ValueError, AttributeError, DataError, ConfigError) as exc:
        raise CheckpointError(f"{where}: stored series context is invalid ({exc})") from exc
    calibration = Calibration.from_dict(meta.get("calibration"), where)
    online = {k[len(ONLINE) :]: v for k, v in tensors.items() if k.startswith(ONLINE)}
    return Saved(predictor, series, calibration, online, meta.get("online") or None)
