"""Model files: safetensors weights plus JSON metadata. No pickle, no code runs on load.

A model directory holds::

    model.safetensors   the network's tensors, and the tail of each training series
                        (``context.<i>``) so that ``predict()`` can continue without data
    model.json          format version, versions, configs, scalers, data schema, metrics

Both are written to temp files and renamed, so a crash leaves the old pair or the new pair.
``load_model_files`` checks the format version, the file kinds and every tensor's name,
shape and dtype before anything is built, and turns any problem into one
:class:`~elman.errors.CheckpointError` line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from elman import __version__
from elman.errors import CheckpointError
from elman.files import atomic_write_bytes, atomic_write_json

FORMAT = "elman-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "model.json"


def save_model_files(
    directory: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write weights and metadata into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(directory / WEIGHTS, st_save(flat))
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "elman_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
    }
    atomic_write_json(directory / META, {**header, **meta})
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """Read and check ``model.json`` without touching the weights."""
    directory = Path(directory)
    path = directory / META
    if not directory.exists():
        raise CheckpointError(f"model directory '{directory}' does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"'{directory}' is a file; give the model directory (with {META})")
    if not path.is_file():
        raise CheckpointError(f"'{directory}' holds no {META}; is it a model or run directory?")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an elman model file (format field missing)")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path} has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {version}, newer than this elman reads "
            f"({FORMAT_VERSION}); upgrade elman (it was written by elman "
            f"{meta.get('elman_version', '?')})"
        )
    return meta


def read_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` (a safe format: only tensors, never code)."""
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"'{directory}' holds no {WEIGHTS}")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is corrupt or truncated ({exc})") from exc


def check_state_dict(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], where: str
) -> None:
    """Every expected tensor present with the same shape and dtype, and nothing extra."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing or extra:
        what = f"missing tensor '{missing[0]}'" if missing else f"unexpected tensor '{extra[0]}'"
        raise CheckpointError(f"{where} does not match its metadata: {what}")
    for name, ref in expected.items():
        got = found[name]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise CheckpointError(
                f"{where}: tensor '{name}' has shape {tuple(got.shape)} {got.dtype}, "
                f"expected {tuple(ref.shape)} {ref.dtype}"
            )
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{where}: tensor '{name}' holds NaN or infinite values")
