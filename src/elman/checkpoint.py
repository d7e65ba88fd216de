"""Model files and training checkpoints: safetensors + JSON. No pickle, no code runs on load.

A model directory holds::

    model.safetensors   the network's tensors, and the tail of each training series
                        (``context.<i>``) so that ``predict()`` can continue without data
    model.json          format version, versions, configs, scalers, data schema, metrics,
                        ``weights_sha256`` (a digest of every tensor in model.safetensors)
                        and ``meta_sha256`` (a digest of the rest of model.json)

A training checkpoint (``RUN/checkpoint/state.safetensors``) is one safetensors file: the
tensors of the model, optimizer, best weights and RNG states, and, in the file's metadata
header, one JSON document with everything else (epoch, early-stopping state, history,
scheduler, config, data fingerprint). One file is renamed into place at once, so a crash
leaves the previous checkpoint or the new one, never a mix. See :mod:`elman.training.resume` for the
code that captures and restores a :class:`~elman.training.trainer.Trainer` with it.

Every reader checks the format name and version, the digest and every tensor's name, shape
and dtype before anything is built, and turns any problem into one
:class:`~elman.errors.CheckpointError` line.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from elman._version import __version__
from elman.errors import CheckpointError
from elman.files import META, WEIGHTS, atomic_write_bytes, atomic_write_json
from elman.files import _json_safe as json_safe

FORMAT = "elman-model"
FORMAT_VERSION = 1
DIGEST_KEY = "weights_sha256"
META_DIGEST_KEY = "meta_sha256"
MAX_HEADER = 100 * 2**20  # safetensors headers above 100 MiB are refused (as safetensors does)


def versions() -> dict[str, str]:
    """The package versions recorded in every file elman writes."""
    return {"elman_version": __version__, "torch_version": torch.__version__.split("+")[0]}


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def doc_digest(doc: dict[str, Any]) -> str:
    """``sha256:<hex>`` of a JSON document in canonical form (sorted keys, no spaces)."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """``doc`` (made JSON-safe: NaN and inf become null) with its digest under ``key``."""
    safe = json.loads(json.dumps(json_safe(doc)))
    return {**safe, key: doc_digest(safe)}


def check_seal(doc: dict[str, Any], key: str, path: Path) -> None:
    """Refuse a document whose content no longer matches its digest under ``key``."""
    if not isinstance(doc.get(key), str):
        raise CheckpointError(f"{path} has no {key}; it is incomplete or not written by elman")
    rest = {k: v for k, v in doc.items() if k != key}
    try:
        same = doc.get(key) == doc_digest(rest)
    except (ValueError, TypeError):  # NaN or other non-JSON content from a foreign writer
        same = False
    if not same:
        raise CheckpointError(
            f"{path} was edited or damaged after it was written ({key} does not match); "
            "use an intact copy"
        )


def save_model_files(
    directory: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write weights and metadata into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(directory / WEIGHTS, st_save(flat))
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **versions()}
    doc = {**header, **meta, DIGEST_KEY: tensors_digest(flat)}
    atomic_write_json(directory / META, seal(doc, META_DIGEST_KEY))
    return directory


def check_format(meta: Any, path: Path, kind: str, newest: int) -> dict[str, Any]:
    """The ``format`` name and ``format_version`` of a metadata document, or one clear error."""
    if not isinstance(meta, dict) or meta.get("format") != kind:
        raise CheckpointError(f"{path} is not an {kind} file (format field missing or different)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} has no valid format_version")
    if version > newest:
        raise CheckpointError(
            f"{path} has format version {version}, newer than this elman reads ({newest}); "
            f"upgrade elman (it was written by elman {meta.get('elman_version', '?')})"
        )
    return meta


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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {exc})") from exc
    return check_format(meta, path, FORMAT, FORMAT_VERSION)


def load_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (a safe format: only tensors, never code)."""
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is corrupt or truncated ({exc})") from exc


def read_tensors(directory: str | Path, digest: str | None = None) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors``; with ``digest``, refuse it unless its tensors match."""
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"'{directory}' holds no {WEIGHTS}")
    tensors = load_tensor_file(path)
    if digest is not None and tensors_digest(tensors) != digest:
        raise CheckpointError(
            f"{path} does not match the {DIGEST_KEY} in {META}: the file was changed or damaged "
            "after it was written; use an intact copy"
        )
    return tensors


def load_model_files(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``model.json`` and ``model.safetensors``, each checked against its digest."""
    meta = read_meta(directory)
    path = Path(directory) / META
    if not isinstance(meta.get(DIGEST_KEY), str):
        raise CheckpointError(f"{path} has no {DIGEST_KEY}; it is incomplete")
    check_seal(meta, META_DIGEST_KEY, path)
    return meta, read_tensors(directory, meta[DIGEST_KEY])


def read_header(path: str | Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """The metadata and tensor shapes of a safetensors file, without reading any tensor data.

    Returns:
        ``(metadata, {name: shape})``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise CheckpointError(f"{path} is truncated (no safetensors header)")
            (size,) = struct.unpack("<Q", raw)
            if size > MAX_HEADER:
                raise CheckpointError(f"{path} is not a safetensors file (header size {size})")
            text = fh.read(size)
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror}") from exc
    try:
        header = json.loads(text.decode("utf-8"))
        meta = header.pop("__metadata__", None) or {}
        shapes = {k: tuple(int(n) for n in v["shape"]) for k, v in header.items()}
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file (bad header)") from exc
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path} is not a safetensors file (bad metadata)")
    return meta, shapes


def check_state_dict(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], where: str
) -> None:
    """Every expected tensor present with the same shape and dtype, and nothing extra.

    ``expected`` may live on the ``meta`` device: only shapes and dtypes are compared.
    """
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


# -- training checkpoints: one safetensors file with a JSON document in its header ---------
CHECKPOINT_FORMAT = "elman-checkpoint"
CHECKPOINT_VERSION = 1
_DOC = "elman"  # metadata key holding the JSON document


def write_checkpoint(
    path: str | Path, doc: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Path:
    """Atomically write a checkpoint: ``tensors`` plus the JSON document ``doc``."""
    return write_sealed(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, doc, tensors)


def write_sealed(
    path: str | Path, kind: str, version: int, doc: dict[str, Any],
    tensors: dict[str, torch.Tensor],
) -> Path:  # fmt: skip
    """Atomically write one safetensors file of format ``kind``: ``tensors`` plus ``doc``.

    The document goes into the file's metadata header with the format, the versions, a
    digest of the tensors (``tensors_sha256``) and a digest of itself (``doc_sha256``), so
    :func:`read_sealed` refuses a file that was changed after it was written.
    """
    path = Path(path)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    head = {
        "format": kind,
        "format_version": version,
        **versions(),
        "tensors_sha256": tensors_digest(flat),
    }
    full = {**head, **doc}
    text = json.dumps({**full, "doc_sha256": doc_digest(full)}, allow_nan=False)
    atomic_write_bytes(path, st_save(flat, metadata={_DOC: text}))
    return path


def read_sealed(
    path: str | Path, kind: str, newest: int, what: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Document and tensors of a :func:`write_sealed` file, both checked against their digests."""
    path = Path(path)
    doc = read_document(path, kind, newest, what)
    check_seal(doc, "doc_sha256", path)
    tensors = load_tensor_file(path)
    if tensors_digest(tensors) != doc.get("tensors_sha256"):
        raise CheckpointError(
            f"{path} does not match its tensors_sha256: the file was changed or damaged after "
            "it was written; use an intact copy"
        )
    return doc, tensors


def read_document(path: str | Path, kind: str, newest: int, what: str) -> dict[str, Any]:
    """The JSON document in a safetensors file's metadata, checked for format and version.

    Reads the header only, no tensor. Training checkpoints (``kind`` ``elman-checkpoint``)
    and stream checkpoints (``elman-stream``) both keep their document this way; ``what``
    names the kind of file in messages ("an elman checkpoint").
    """
    path = Path(path)
    meta, _ = read_header(path)
    try:
        doc = json.loads(meta[_DOC])
    except (KeyError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} is not {what} (no {_DOC} metadata)") from exc
    return check_format(doc, path, kind, newest)


def read_checkpoint_doc(path: str | Path) -> dict[str, Any]:
    """The JSON document of a checkpoint, checked for format and version; no tensor is read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; was the run started with this elman?")
    doc = read_document(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "an elman checkpoint")
    check_seal(doc, "doc_sha256", path)
    return doc


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Document and tensors of a checkpoint, with the tensors checked against the digest."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; was the run started with this elman?")
    return read_sealed(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "an elman checkpoint")


# -- nested state (optimizer, scheduler) <-> JSON + named tensors ---------------------------
def encode_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Turn a nested state (dicts, lists, tuples, numbers, tensors) into plain JSON.

    Tensors move to ``tensors`` under a name derived from ``prefix`` and are referenced as
    ``{"__tensor__": name}``. Tuples, dicts with non-string keys and non-finite floats get
    tags of their own, so that :func:`decode_state` rebuilds the exact same structure.
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else {"__float__": repr(obj)}
    if isinstance(obj, torch.Tensor):
        name = prefix if prefix not in tensors else f"{prefix}#{len(tensors)}"
        tensors[name] = obj
        return {"__tensor__": name}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_state(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {
            "__dict__": [
                [
                    encode_state(k, f"{prefix}.key{i}", tensors),
                    encode_state(v, f"{prefix}.{k}", tensors),
                ]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint ({prefix})")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor], used: set[str], where: str) -> Any:
    """Inverse of :func:`encode_state`; anything unexpected is a :class:`CheckpointError`."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode_state(v, tensors, used, where) for v in obj]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: malformed state value of type {type(obj).__name__}")
    if len(obj) == 1:
        ((tag, value),) = obj.items()
        if tag == "__tensor__":
            if value not in tensors:
                raise CheckpointError(f"{where}: missing tensor '{value}'")
            used.add(value)
            return tensors[value]
        if tag == "__float__" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(decode_state(v, tensors, used, where) for v in value)
        if tag == "__dict__" and isinstance(value, list):
            if not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise CheckpointError(f"{where}: malformed state mapping")
            try:
                return {
                    decode_state(k, tensors, used, where): decode_state(v, tensors, used, where)
                    for k, v in value
                }
            except TypeError as exc:  # an unhashable key
                raise CheckpointError(f"{where}: malformed state mapping ({exc})") from exc
    if any(k.startswith("__") for k in obj):
        raise CheckpointError(f"{where}: unknown state tag '{next(iter(obj))}'")
    return {k: decode_state(v, tensors, used, where) for k, v in obj.items()}
