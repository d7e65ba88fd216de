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
from typing import Any, NoReturn

import numpy as np
import torch

from elman.checkpoint import check_state_dict, load_model_files, save_model_files
from elman.config import Config
from elman.data.prepare import Sizes
from elman.data.scaling import Scaler
from elman.data.series import Series
from elman.data.windows import Layout
from elman.errors import CheckpointError, ConfigError, DataError
from elman.files import META, WEIGHTS
from elman.forecasting.calibration import Calibration
from elman.forecasting.context import series_from_schema, series_schema
from elman.forecasting.esrnn import make_predictor
from elman.forecasting.predictor import Predictor, series_key
from elman.models.base import SequenceModel
from elman.models.highway import Highway
from elman.models.registry import build_model, check_against_shapes, model_config

ONLINE = "online."  # prefix of the online learner's tensors
FLOAT32_MAX = float(np.finfo(np.float32).max)  # scaled inputs run through float32 networks


@dataclass
class Saved:
    """What a model directory holds, rebuilt."""

    predictor: Predictor
    series: list[Series]  # the stored tail of each series (its last ``lookback`` points)
    calibration: Calibration | None
    online_tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # without the prefix
    online_meta: dict[str, Any] | None = None
    ensemble: dict[str, Any] | None = None  # the ``ensemble`` entry (members and weights)


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
    context, contexts = series_contexts(predictor, series)
    tensors.update(context)
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


def series_contexts(
    predictor: Predictor, series: list[Series]
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The tail a saved model keeps of each series: tensors ``context.<i>`` and their
    schemas, which :func:`~elman.forecasting.context.series_from_schema` reads back."""
    tensors, schemas = {}, []
    for i, s in enumerate(series):
        tail = predictor.context(s)
        tensors[f"context.{i}"] = torch.from_numpy(np.ascontiguousarray(tail.values))
        schemas.append(series_schema(tail))
    return tensors, schemas


def load_predictor(directory: str | Path) -> Saved:
    """Rebuild what :func:`save_predictor` wrote; never executes code from the files.

    Every value of the metadata is checked against what the tensors say before anything
    is built (see :func:`check_against_tensors`): a hand-edited ``model.json`` whose digest
    was recomputed is refused with one line that names the key, instead of allocating,
    looping or forecasting infinities.

    Raises:
        CheckpointError: a file is missing, corrupt, tampered with, or its metadata is
            incomplete or disagrees with the tensors, with the file and key named.
    """
    meta, tensors = load_model_files(directory)
    where = str(Path(directory))
    path = Path(directory) / META
    try:
        config = Config.from_dict(meta["config"], source=where)
        mcfg = dict(meta["model_config"])
        sizes = Sizes(**meta["sizes"])
        layout = Layout(**meta["layout"])
        raw_scalers = meta["scalers"]
        if not isinstance(raw_scalers, dict):
            raise ValueError("scalers must be an object")
        scalers = {
            k: Scaler.from_dict(v, f"{path}: scalers.{k}") for k, v in raw_scalers.items()
        }
        schemas = meta["series"]
        if not isinstance(schemas, list):
            raise ValueError("series must be a list")
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"{where}: metadata is incomplete or invalid ({exc})") from exc
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    ensemble = meta.get("ensemble") or None  # an ensemble keeps longer series tails
    check_against_tensors(path, mcfg, sizes, layout, config, tensors, len(schemas),
                          long_context=ensemble is not None)  # fmt: skip
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated before the check
            probe = build_model(**mcfg)
    except (TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{where}: metadata is incomplete or invalid ({exc})") from exc
    check_state_dict(probe.state_dict(), weights, where)
    check_layout(path, probe, sizes, layout, config)
    model = build_model(**mcfg)
    model.load_state_dict(weights)
    predictor = make_predictor(model.eval(), sizes, layout, scalers, config)
    try:
        series = [series_from_schema(s, tensors, i, where) for i, s in enumerate(schemas)]
    except (KeyError, TypeError, ValueError, AttributeError, DataError, ConfigError) as exc:
        raise CheckpointError(f"{where}: stored series context is invalid ({exc})") from exc
    check_series(path, series, layout, predictor)
    calibration = Calibration.from_dict(meta.get("calibration"), str(path))
    if calibration is not None and calibration.quantiles:
        n_t = next(iter(calibration.quantiles.values())).shape[1]
        if n_t != layout.n_targets:
            raise CheckpointError(
                f"{path}: calibration.quantiles has {n_t} column(s), but the model forecasts "
                f"{layout.n_targets} target(s) (layout.n_targets); use an intact copy"
            )
    online = {k[len(ONLINE) :]: v for k, v in tensors.items() if k.startswith(ONLINE)}
    return Saved(predictor, series, calibration, online, meta.get("online") or None, ensemble)


def _refuse(path: Path, what: str) -> NoReturn:
    raise CheckpointError(f"{path}: {what}; the file was edited or damaged; use an intact copy")


def check_against_tensors(
    path: Path,
    mcfg: dict[str, Any],
    sizes: Sizes,
    layout: Layout,
    config: Config,
    tensors: dict[str, torch.Tensor],
    n_series: int,
    long_context: bool = False,
) -> None:
    """Refuse metadata that the stored tensors contradict, before anything is built.

    The weights bound the model's sizes (:func:`~elman.models.registry.check_against_shapes`);
    the ``context.<i>`` tensors fix the number of series, their columns (the layout) and
    their length (the lookback).
    """
    shapes = {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("model.")}
    if not shapes:
        _refuse(path, f"{WEIGHTS} holds no model weights")
    try:
        check_against_shapes(mcfg, shapes)
    except ConfigError as exc:
        _refuse(path, f"model_config.{exc}")
    contexts = {k for k in tensors if k.startswith("context.")}
    expected = [f"context.{i}" for i in range(n_series)]
    if not contexts or set(expected) != contexts:
        _refuse(
            path,
            f"series lists {n_series} series, but {WEIGHTS} holds {len(contexts)} series "
            "context tensor(s) (context.0, ...)",
        )
    n_cols = layout.input_size
    for name in expected:
        shape = tuple(tensors[name].shape)
        if len(shape) != 2:
            _refuse(path, f"tensor '{name}' has shape {shape}, expected [rows, columns]")
        if shape[1] != n_cols:
            _refuse(
                path,
                f"layout (n_targets {layout.n_targets} + n_covariates {layout.n_covariates} + "
                f"n_future {layout.n_future}) gives {n_cols} column(s), but the stored series "
                f"({name} in {WEIGHTS}) have {shape[1]}",
            )
        # an ES-RNN keeps the history its smoothing reads, an ensemble its members' history
        whole = mcfg.get("name") == "esrnn" or long_context
        rows = shape[0]  # a padded model keeps all of a series shorter than the lookback
        short = sizes.padded and 1 <= rows < sizes.lookback
        if not short and ((rows < sizes.lookback) if whole else (rows != sizes.lookback)):
            _refuse(
                path,
                f"sizes.lookback ({sizes.lookback}) does not fit the {shape[0]} rows of the "
                f"stored series context ({name} in {WEIGHTS})",
            )
    if sizes.horizon != config.data.horizon:
        _refuse(
            path,
            f"sizes.horizon ({sizes.horizon}) differs from config.data.horizon "
            f"({config.data.horizon})",
        )


def check_layout(
    path: Path, probe: SequenceModel, sizes: Sizes, layout: Layout, config: Config
) -> None:
    """The layout and sizes agree with the network's input and output sizes."""
    inputs, outputs = int(probe.input_size), int(probe.output_size)
    if layout.input_size != inputs:
        _refuse(
            path,
            f"layout (n_targets {layout.n_targets} + n_covariates {layout.n_covariates} + "
            f"n_future {layout.n_future}) gives {layout.input_size} input column(s), but the "
            f"weights take {inputs} (model_config.input_size)",
        )
    direct = config.model.strategy == "direct"
    want = layout.n_targets * (sizes.horizon if direct else 1)
    if want != outputs:
        how = f"sizes.horizon ({sizes.horizon}) x " if direct else ""
        _refuse(
            path,
            f"{how}layout.n_targets ({layout.n_targets}) is {want} output(s) for the "
            f"{config.model.strategy} strategy, but the weights give {outputs} "
            "(model_config.output_size)",
        )
    if isinstance(probe, Highway) and (
        probe.window != sizes.lookback or probe.n_inputs != layout.n_targets
    ):
        _refuse(
            path,
            f"model_config.highway ({probe.window} x {probe.n_inputs}) does not match "
            f"sizes.lookback "
            f"({sizes.lookback}) x layout.n_targets ({layout.n_targets})",
        )


def check_series(path: Path, series: list[Series], layout: Layout, predictor: Predictor) -> None:
    """Each stored series has the layout's column roles and scales to finite float32 inputs."""
    for i, s in enumerate(series):
        roles = (len(s.targets), len(s.covariates), len(s.future_covariates))
        if roles != (layout.n_targets, layout.n_covariates, layout.n_future):
            _refuse(
                path,
                f"series[{i}] has {roles[0]} target(s), {roles[1]} covariate(s) and {roles[2]} "
                f"future covariate(s), but layout says {layout.n_targets}, "
                f"{layout.n_covariates} and {layout.n_future}",
            )
        key = series_key(s)
        scaler = predictor.scalers.get(key) or (
            next(iter(predictor.scalers.values())) if len(predictor.scalers) == 1 else None
        )
        if scaler is None or scaler.center is None or scaler.scale is None:
            continue  # an unseen series is scaled by its own history
        if scaler.n_columns != s.values.shape[1]:
            _refuse(
                path,
                f"scalers.{key} has {scaler.n_columns} column(s), but series[{i}] has "
                f"{s.values.shape[1]}",
            )
        with np.errstate(all="ignore"):
            z = np.abs(scaler.transform(s.values))
        if (z[np.isfinite(s.values)] > FLOAT32_MAX).any() or np.isinf(s.values).any():
            _refuse(
                path,
                f"scalers.{key} scales the stored series[{i}] beyond float32 (scale "
                f"{float(np.min(scaler.scale)):.3g})",
            )
