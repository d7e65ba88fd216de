"""Model files and checkpoints: exact round trips, and every damaged or foreign file refused.

Damage is done to real files on disk: truncation, flipped bytes, edited metadata, files of
another format, files from a newer elman. Each must end in one CheckpointError line.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from elman.checkpoint import (
    META_DIGEST_KEY,
    decode_state,
    encode_state,
    read_checkpoint,
    read_checkpoint_doc,
    read_header,
    seal,
    write_checkpoint,
)
from elman.errors import CheckpointError
from elman.files import META, WEIGHTS
from elman.forecaster import Forecaster

SRC = Path(__file__).resolve().parents[1] / "src" / "elman"
FAST = {"epochs": 2, "hidden_size": 6, "batch_size": 32, "progress": False, "threads": 1}


def _sine(n: int = 160) -> np.ndarray:
    return np.sin(np.arange(n) * 2 * np.pi / 20) + 0.01 * np.arange(n)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    Forecaster("gru", horizon=3, lookback=12, **FAST).fit(_sine()).save(out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _header_len(path: Path) -> int:
    return 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


# ------------------------------------------------------------------ state codec
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
TENSORS = st.builds(
    lambda shape, dtype: torch.arange(math.prod(shape), dtype=dtype).reshape(shape),
    st.lists(st.integers(0, 3), max_size=3),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.uint8]),
)
KEYS = st.one_of(st.text(max_size=4), st.integers(-5, 5))
STATES = st.recursive(
    st.one_of(SCALARS, TENSORS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(KEYS, inner, max_size=3),
    ),
    max_leaves=12,
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, float):
        return isinstance(b, float) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(state=STATES)
def test_state_codec_round_trips_exactly_through_a_file(state: object, tmp_path_factory) -> None:
    tensors: dict[str, torch.Tensor] = {}
    doc = {"state": encode_state(state, "s", tensors)}
    path = tmp_path_factory.mktemp("c") / "state.safetensors"
    write_checkpoint(path, doc, tensors)
    read_doc, read_tensors = read_checkpoint(path)
    used: set[str] = set()
    assert _same(state, decode_state(read_doc["state"], read_tensors, used, "test"))
    assert used == set(tensors)


def test_optimizer_state_round_trips_exactly() -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    tensors: dict[str, torch.Tensor] = {}
    doc = json.loads(json.dumps(encode_state(opt.state_dict(), "opt", tensors)))
    back = decode_state(doc, tensors, set(), "test")
    assert _same(opt.state_dict(), back)
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize(
    "doc",
    [
        {"__tensor__": "missing"},
        {"__float__": "1e400"},
        {"__tuple__": 3},
        {"__dict__": [[1]]},
        {"__dict__": [[[1, 2], 3]]},
        {"__code__": "print(1)"},
        {"a": 1, "__tensor__": "x"},
    ],
)
def test_malformed_state_is_a_checkpoint_error(doc: dict) -> None:
    with pytest.raises(CheckpointError):
        decode_state(doc, {}, set(), "file")


def test_unstorable_state_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot store a object"):
        encode_state({"x": object()}, "s", {})


# ------------------------------------------------------------------ model files
def test_load_reads_back_identical_weights(model_dir: Path) -> None:
    f = Forecaster.load(model_dir)
    meta = json.loads((model_dir / META).read_text())
    assert meta["format"] == "elman-model" and meta["format_version"] == 1
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", meta["weights_sha256"])
    assert f.predict().shape == (3, 1)


def test_truncated_weights_are_refused(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path / "m")
    data = (d / WEIGHTS).read_bytes()
    (d / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Forecaster.load(d)


def test_a_changed_weight_byte_is_detected(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path / "m")
    data = bytearray((d / WEIGHTS).read_bytes())
    data[_header_len(d / WEIGHTS) + 5] ^= 0x01  # inside the tensor data: still a valid file
    (d / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="changed or damaged after it was written"):
        Forecaster.load(d)


def test_newer_format_version_names_both_versions(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path / "m")
    meta = json.loads((d / META).read_text())
    meta["format_version"] = 7
    (d / META).write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"format version 7, newer than this elman reads \(1\)"
    ):
        Forecaster.load(d)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an elman-model file"),
        ('{"format": "something-else"}', "not an elman-model file"),
        ('{"format": "elman-model", "format_version": "1"}', "no valid format_version"),
        ('{"format": "elman-model", "format_version": 1}', "has no weights_sha256"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_foreign_or_broken_metadata_is_refused(
    model_dir: Path, tmp_path: Path, text: str, message: str
) -> None:
    d = _copy(model_dir, tmp_path / "m")
    (d / META).write_text(text)
    with pytest.raises(CheckpointError, match=message):
        Forecaster.load(d)


def _edit_meta(d: Path, edit, reseal: bool = True) -> None:
    """Edit model.json; with ``reseal`` also recompute its digest, as a forger would."""
    meta = json.loads((d / META).read_text())
    edit(meta)
    meta.pop(META_DIGEST_KEY)
    (d / META).write_text(json.dumps(seal(meta, META_DIGEST_KEY) if reseal else meta))


def test_edited_metadata_without_a_new_digest_is_detected(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path / "m")
    meta = json.loads((d / META).read_text())
    meta["scalers"]["__single__"]["center"] = [100.0]
    (d / META).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="edited or damaged after it was written"):
        Forecaster.load(d)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["model_config"].update(hidden_size=10**7), "has shape"),
        (lambda m: m["model_config"].update(num_layers=4000), "missing tensor"),
        (lambda m: m["model_config"].update(name="transformer"), "metadata is incomplete"),
        (lambda m: m["model_config"].update(exec="import os"), "metadata is incomplete"),
        (lambda m: m.pop("sizes"), "metadata is incomplete"),
        (lambda m: m["config"]["train"].update(lr=-1), "metadata is incomplete"),
        (lambda m: m["series"][0].update(index=["x"] * 12), "series context is invalid"),
        (lambda m: m["series"][0].update(index_kind="period", freq="nonsense"), "invalid"),
    ],
)
def test_edited_metadata_is_refused_before_building(
    model_dir: Path, tmp_path: Path, edit, message: str
) -> None:
    d = _copy(model_dir, tmp_path / "m")
    _edit_meta(d, edit)
    with pytest.raises(CheckpointError, match=message):
        Forecaster.load(d)


def test_weights_of_another_shape_are_refused(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path / "m")
    other = tmp_path / "other"
    Forecaster("gru", horizon=3, lookback=12, **{**FAST, "hidden_size": 7}).fit(_sine()).save(other)
    (d / WEIGHTS).write_bytes((other / WEIGHTS).read_bytes())
    _edit_meta(
        d,
        lambda m: m.update(weights_sha256=json.loads((other / META).read_text())["weights_sha256"]),
    )
    with pytest.raises(CheckpointError, match="has shape"):
        Forecaster.load(d)


def test_safetensors_file_of_another_tool_is_refused(model_dir: Path, tmp_path: Path) -> None:
    d = _copy(model_dir, tmp_path / "m")
    (d / WEIGHTS).write_bytes(st_save({"encoder.weight": torch.ones(2, 2)}))
    with pytest.raises(CheckpointError, match="does not match the weights_sha256"):
        Forecaster.load(d)


@pytest.mark.parametrize("blob", [b"", b"\x00" * 3, b"PK\x03\x04" + bytes(200), b"\xff" * 64])
def test_junk_weights_file_is_refused(model_dir: Path, tmp_path: Path, blob: bytes) -> None:
    d = _copy(model_dir, tmp_path / "m")
    (d / WEIGHTS).write_bytes(blob)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Forecaster.load(d)


def test_pickle_file_is_never_unpickled(model_dir: Path, tmp_path: Path) -> None:
    # A pickle that would create a file when unpickled: loading must refuse it unopened.
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    d = _copy(model_dir, tmp_path / "m")
    (d / WEIGHTS).write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        Forecaster.load(d)
    assert not (tmp_path / "pwned").exists()


def test_missing_files_and_directories(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Forecaster.load(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no model.json"):
        Forecaster.load(tmp_path)
    d = _copy(model_dir, tmp_path / "m")
    (d / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="holds no model.safetensors"):
        Forecaster.load(d)


# ------------------------------------------------------------------ checkpoint files
@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "state.safetensors"
    tensors: dict[str, torch.Tensor] = {}
    doc = {"state": encode_state({"w": torch.ones(3), "step": 4, "best": math.inf}, "s", tensors)}
    write_checkpoint(path, doc, tensors)
    return path


def _rewrite_doc(path: Path, edit) -> None:
    meta, _ = read_header(path)
    doc = json.loads(meta["elman"])
    edit(doc)
    tensors = read_checkpoint(path)[1] if path.stat().st_size else {}
    path.write_bytes(st_save(tensors, metadata={"elman": json.dumps(doc)}))


def test_checkpoint_header_is_readable_without_the_tensors(ckpt: Path) -> None:
    doc = read_checkpoint_doc(ckpt)
    assert doc["format"] == "elman-checkpoint" and doc["format_version"] == 1
    meta, shapes = read_header(ckpt)
    assert shapes == {"s.w": (3,)}


@pytest.mark.parametrize("keep", [0, 4, 8, 20, -3])
def test_truncated_checkpoint_is_refused(ckpt: Path, keep: int) -> None:
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:keep])
    with pytest.raises(CheckpointError, match="truncated|not a safetensors|corrupt"):
        read_checkpoint(ckpt)


def test_changed_checkpoint_byte_is_detected(ckpt: Path) -> None:
    data = bytearray(ckpt.read_bytes())
    data[_header_len(ckpt)] ^= 0x40
    ckpt.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="changed or damaged"):
        read_checkpoint(ckpt)


def test_newer_checkpoint_version_is_refused(ckpt: Path) -> None:
    _rewrite_doc(ckpt, lambda d: d.update(format_version=2))
    with pytest.raises(CheckpointError, match="format version 2, newer than this elman"):
        read_checkpoint(ckpt)


def test_model_file_is_not_a_checkpoint(model_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="not an elman checkpoint"):
        read_checkpoint(model_dir / WEIGHTS)


def test_checkpoint_of_another_kind_is_refused(ckpt: Path) -> None:
    _rewrite_doc(ckpt, lambda d: d.update(format="elman-model"))
    with pytest.raises(CheckpointError, match="not an elman-checkpoint file"):
        read_checkpoint(ckpt)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_single_byte_change_is_refused_or_harmless(data, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("c") / "state.safetensors"
    tensors: dict[str, torch.Tensor] = {}
    doc = {"state": encode_state({"w": torch.arange(6.0), "n": 3}, "s", tensors)}
    write_checkpoint(path, doc, tensors)
    raw = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(raw))
    try:
        got_doc, got = read_checkpoint(path)
    except CheckpointError:
        return
    # Only a change that leaves the meaning intact (JSON whitespace) may pass.
    assert got_doc["state"] == doc["state"] and torch.equal(got["s.w"], tensors["s.w"])


# ------------------------------------------------------------------ the source itself
def test_no_pickle_and_no_unsafe_torch_load_in_the_package() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"\bimport pickle\b|\bpickle\.|\bdill\b|\bcloudpickle\b", code):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{path.name}:{n}: {line.strip()}")
            if "allow_pickle=True" in code:
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert offenders == []
