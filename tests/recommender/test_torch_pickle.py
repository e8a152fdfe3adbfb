"""Tests for recommender.torch_pickle: the real lite0 file, crafted legacy files, and refused pickles.

The crafted files are written here the way torch's legacy ``torch.save`` lays them out (torch is not installed):
the magic number, the protocol version 1001 and a sys-info dict, each a protocol-2 pickle; then the state dict,
whose tensors pickle as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and whose storages
are persistent ids ``('storage', torch.<Kind>Storage, key, 'cpu', numel, None)``; then the sorted list of storage
keys; then, per key, the element count as int64 and the raw little-endian bytes.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from recommender.backbones.efficientnet_lite import VARIANTS, packaged_weights_path
from recommender.download import sha256_file
from recommender.torch_pickle import UnsafePickleError, load_state_dict

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
STORAGE_DTYPES = {"FloatStorage": "<f4", "LongStorage": "<i8", "HalfStorage": "<f2", "ByteStorage": "u1"}
REFUSED = (ValueError, pickle.UnpicklingError, EOFError)  # what a damaged file may raise; nothing else


# --- a legacy torch.save writer -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeStorage:
    key: str
    kind: str
    data: np.ndarray


@dataclass(frozen=True)
class FakeTensor:
    storage: FakeStorage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    legacy_rebuild: bool = False  # torch._utils._rebuild_tensor, from before _v2


def _fake_torch() -> tuple[types.ModuleType, types.ModuleType, dict[str, type]]:
    """Modules named like torch's, only so that pickle writes the same GLOBAL opcodes torch does."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("_rebuild_tensor_v2", "_rebuild_tensor"):

        def never_called(*args: object) -> None:
            raise AssertionError("only pickled, never called")

        never_called.__module__, never_called.__qualname__, never_called.__name__ = "torch._utils", name, name
        setattr(utils, name, never_called)
    kinds = {name: type(name, (), {"__module__": "torch"}) for name in STORAGE_DTYPES}
    for name, kind in kinds.items():
        setattr(torch, name, kind)
    torch._utils = utils  # type: ignore[attr-defined]
    return torch, utils, kinds


def legacy_bytes(state: object, storages: list[FakeStorage], *, sys_info: dict[str, object] = SYS_INFO) -> bytes:
    torch, utils, kinds = _fake_torch()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, FakeStorage):
                return ("storage", kinds[obj.kind], obj.key, "cpu", obj.data.size, None)
            return None

        def reducer_override(self, obj: object) -> object:
            if isinstance(obj, FakeTensor):
                args = (obj.storage, obj.offset, obj.shape, obj.stride)
                if obj.legacy_rebuild:
                    return utils._rebuild_tensor, args
                return utils._rebuild_tensor_v2, (*args, False, collections.OrderedDict())
            return NotImplemented

    buffer = io.BytesIO()
    with mock.patch.dict(sys.modules, {"torch": torch, "torch._utils": utils}):
        for header in (MAGIC_NUMBER, 1001, sys_info):
            pickle.dump(header, buffer, protocol=2)
        Pickler(buffer, protocol=2).dump(state)
        keys = sorted(storage.key for storage in storages)
        pickle.dump(keys, buffer, protocol=2)
    by_key = {storage.key: storage for storage in storages}
    for key in keys:
        data = np.ascontiguousarray(by_key[key].data, dtype=STORAGE_DTYPES[by_key[key].kind])
        buffer.write(np.int64(data.size).tobytes())
        buffer.write(data.tobytes())
    return buffer.getvalue()


def sample_state() -> tuple[collections.OrderedDict[str, FakeTensor], list[FakeStorage]]:
    weights = FakeStorage("7", "FloatStorage", np.arange(6, dtype="<f4") - 2.5)
    longs = FakeStorage("10", "LongStorage", np.arange(10, dtype="<i8") * -3)
    half = FakeStorage("2", "HalfStorage", np.array([0.5, -2.0, 3.25, 1024.0], dtype="<f2"))
    state = collections.OrderedDict(
        [
            ("conv.weight", FakeTensor(weights, 0, (2, 3), (3, 1))),
            ("conv.weight_t", FakeTensor(weights, 0, (3, 2), (1, 3))),  # a transposed view of the same storage
            ("ids", FakeTensor(longs, 3, (2, 2), (2, 1), legacy_rebuild=True)),
            ("half", FakeTensor(half, 1, (3,), (1,))),
            ("every_other", FakeTensor(half, 0, (2,), (2,))),
            ("bn.num_batches_tracked", FakeTensor(longs, 9, (), ())),
        ]
    )
    return state, [weights, longs, half]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class Touch:
    """Unpickling this runs os.system(touch ...): the classic payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


class Evaluate:
    """Unpickling this runs builtins.eval on code that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


def global_call(module: str, name: str) -> bytes:
    """A protocol-2 pickle that imports ``module.name`` and calls it with no arguments."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."


# --- the real weights ----------------------------------------------------------------------------------------


class _Recorder(pickle.Unpickler):
    """An independent reading of the trusted packaged file: where each tensor's numbers are."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *rest: (storage, offset, size, stride)
        if module == "torch" and name.endswith("Storage"):
            return name
        raise AssertionError(f"unexpected global {module}.{name} in the packaged weights")

    def persistent_load(self, pid: tuple) -> tuple[str, str, int]:
        return pid[2], pid[1], pid[4]  # key, kind, numel


def test_packaged_lite0_weights():
    path = packaged_weights_path("efficientnet-lite0")
    assert sha256_file(path) == VARIANTS["efficientnet-lite0"].sha256

    state = load_state_dict(path, expected_sha256=VARIANTS["efficientnet-lite0"].sha256)

    assert len(state) == 247
    assert not any(name.endswith("num_batches_tracked") for name in state)
    assert all(value.dtype == np.float32 and value.flags.c_contiguous for value in state.values())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.0._depthwise_conv.weight"].shape == (32, 1, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_bn1.running_var"].shape == (1280,)
    assert (state["_bn1.running_var"] > 0).all()
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.bias"].shape == (1000,)

    # _fc.weight is stored transposed (stride (1, 1000)): read its storage by hand and compare.
    with path.open("rb") as file:
        for _ in range(3):
            pickle.load(file)
        layout = _Recorder(file).load()
        keys = pickle.load(file)
        start = file.tell()
    (key, kind, numel), offset, size, stride = layout["_fc.weight"]
    assert (kind, offset, size, stride) == ("FloatStorage", 0, (1000, 1280), (1, 1000))
    position = start
    sizes = {k: n * np.dtype(STORAGE_DTYPES[kind_]).itemsize for (k, kind_, n), *_ in layout.values()}
    for k in keys:
        if k == key:
            break
        position += 8 + sizes[k]
    raw = np.fromfile(path, dtype="<f4", count=numel, offset=position + 8)
    np.testing.assert_array_equal(state["_fc.weight"], raw.reshape(1280, 1000).T)
    assert not np.array_equal(state["_fc.weight"].ravel(), raw)  # the layout really differs


def test_truncated_real_file_is_refused(tmp_path):
    data = packaged_weights_path("efficientnet-lite0").read_bytes()
    with pytest.raises(ValueError, match="file ends inside storage"):
        load_state_dict(write(tmp_path / "half.pth", data[: len(data) // 2]))


# --- crafted files -------------------------------------------------------------------------------------------


def test_crafted_legacy_file(tmp_path):
    state, storages = sample_state()
    loaded = load_state_dict(write(tmp_path / "crafted.pth", legacy_bytes(state, storages)))

    assert list(loaded) == ["conv.weight", "conv.weight_t", "ids", "half", "every_other"]
    weights = np.arange(6, dtype=np.float32) - 2.5
    np.testing.assert_array_equal(loaded["conv.weight"], weights.reshape(2, 3))
    np.testing.assert_array_equal(loaded["conv.weight_t"], weights.reshape(2, 3).T)
    np.testing.assert_array_equal(loaded["ids"], np.array([[-9, -12], [-15, -18]]))
    np.testing.assert_array_equal(loaded["half"], np.array([-2.0, 3.25, 1024.0], dtype=np.float16))
    np.testing.assert_array_equal(loaded["every_other"], np.array([0.5, 3.25], dtype=np.float16))
    assert loaded["conv.weight"].dtype == np.float32
    assert loaded["ids"].dtype == np.int64
    assert loaded["half"].dtype == np.float16
    assert all(value.flags.c_contiguous for value in loaded.values())


def test_crafted_file_with_an_expected_hash(tmp_path):
    path = write(tmp_path / "crafted.pth", legacy_bytes(*sample_state()))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    assert set(load_state_dict(path, expected_sha256=digest)) >= {"conv.weight", "ids"}
    with pytest.raises(ValueError, match=f"expected sha256 {'0' * 64}.*Received: sha256={digest}"):
        load_state_dict(path, expected_sha256="0" * 64)


def test_wrong_hash_is_refused_before_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path / "evil.pth", pickle.dumps(Touch(marker), protocol=2))

    with pytest.raises(ValueError, match="expected sha256"):
        load_state_dict(path, expected_sha256="0" * 64)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [Touch, Evaluate], ids=["os.system", "builtins.eval"])
@pytest.mark.parametrize("where", ["magic", "sys_info", "state", "state_value", "keys"])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path, payload, where):
    # The payload does run under plain pickle: the test would prove nothing otherwise.
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(payload(proof), protocol=2))
    assert proof.exists()

    marker = tmp_path / "pwned"
    evil = payload(marker)
    state, storages = sample_state()
    if where == "magic":
        data = pickle.dumps(evil, protocol=2)
    elif where == "sys_info":
        data = pickle.dumps(MAGIC_NUMBER, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(evil)
    elif where == "state":
        data = legacy_bytes(evil, [])
    elif where == "state_value":
        data = legacy_bytes(collections.OrderedDict([*state.items(), ("extra", evil)]), storages)
    else:
        prefix = legacy_bytes(state, storages)
        header_and_state = prefix[: prefix.index(pickle.dumps(sorted(s.key for s in storages), protocol=2))]
        data = header_and_state + pickle.dumps(evil, protocol=2)

    with pytest.raises(UnsafePickleError, match=r"Received: (posix|nt|os|builtins|__builtin__)\.(system|eval)"):
        load_state_dict(write(tmp_path / "evil.pth", data))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("subprocess", "Popen"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("collections", "Counter"),
        ("numpy", "load"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("torch", "load"),
        ("torch", "Tensor"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch.nn.modules.conv", "Conv2d"),
    ],
)
def test_any_other_global_is_refused(tmp_path, module, name):
    state, storages = sample_state()
    good = legacy_bytes(state, storages)
    state_start = len(b"".join(pickle.dumps(h, protocol=2) for h in (MAGIC_NUMBER, 1001, SYS_INFO)))

    with pytest.raises(UnsafePickleError, match=f"Received: {module}.{name}"):
        load_state_dict(write(tmp_path / "other.pth", good[:state_start] + global_call(module, name)))


def test_unexpected_persistent_ids_are_refused(tmp_path):
    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return ("module", "os") if obj == "sentinel" else None

    buffer = io.BytesIO()
    for header in (MAGIC_NUMBER, 1001, SYS_INFO):
        pickle.dump(header, buffer, protocol=2)
    Pickler(buffer, protocol=2).dump({"x": "sentinel"})

    with pytest.raises(UnsafePickleError, match="unexpected persistent id"):
        load_state_dict(write(tmp_path / "pid.pth", buffer.getvalue()))


def test_truncated_file_is_refused_at_every_length(tmp_path):
    data = legacy_bytes(*sample_state())
    path = tmp_path / "cut.pth"
    for length in range(len(data)):
        path.write_bytes(data[:length])
        with pytest.raises(REFUSED):
            load_state_dict(path)
    assert load_state_dict(write(path, data))  # and the whole file loads


def test_storage_count_mismatch_is_refused(tmp_path):
    state, storages = sample_state()
    data = bytearray(legacy_bytes(state, storages))
    keys_end = data.index(pickle.dumps(sorted(s.key for s in storages), protocol=2)) + len(
        pickle.dumps(sorted(s.key for s in storages), protocol=2)
    )
    data[keys_end : keys_end + 8] = np.int64(11).tobytes()  # the first storage ("10") holds 10 longs

    with pytest.raises(ValueError, match=r"storage 10 size mismatch\. Received: 11 != 10"):
        load_state_dict(write(tmp_path / "count.pth", bytes(data)))


@pytest.mark.parametrize(
    ("offset", "shape", "stride"),
    [
        (4, (64,), (1,)),  # runs past the end: would read the process's heap
        (6, (1,), (1,)),  # starts past the end
        (0, (3, 3), (3, 1)),  # 9 elements of 6
        (0, (2, 3), (1, 3)),  # a transposed stride that lands past the end
        (5, (4,), (-1,)),  # negative strides walk before the start
        (-1, (2,), (1,)),
        (0, (2, 3), (3,)),  # shape and stride disagree
    ],
)
def test_views_outside_their_storage_are_refused(tmp_path, offset, shape, stride):
    storage = FakeStorage("0", "FloatStorage", np.arange(6, dtype="<f4"))
    data = legacy_bytes({"x": FakeTensor(storage, offset, shape, stride)}, [storage])

    with pytest.raises(UnsafePickleError, match="outside its storage"):
        load_state_dict(write(tmp_path / "oob.pth", data))


def test_views_at_the_edges_of_their_storage_load(tmp_path):
    storage = FakeStorage("0", "FloatStorage", np.arange(6, dtype="<f4"))
    state = {
        "last": FakeTensor(storage, 5, (1,), (1,)),
        "empty": FakeTensor(storage, 6, (0,), (1,)),
        "broadcast": FakeTensor(storage, 2, (3, 2), (0, 1)),
    }
    loaded = load_state_dict(write(tmp_path / "edges.pth", legacy_bytes(state, [storage])))

    np.testing.assert_array_equal(loaded["last"], [5.0])
    assert loaded["empty"].shape == (0,)
    np.testing.assert_array_equal(loaded["broadcast"], [[2.0, 3.0]] * 3)


def test_header_problems_are_refused(tmp_path):
    state, storages = sample_state()
    big_endian = legacy_bytes(state, storages, sys_info={**SYS_INFO, "little_endian": False})
    with pytest.raises(ValueError, match="little-endian"):
        load_state_dict(write(tmp_path / "be.pth", big_endian))

    good = legacy_bytes(state, storages)
    magic = pickle.dumps(MAGIC_NUMBER, protocol=2)
    with pytest.raises(ValueError, match=r"not a legacy torch\.save file"):
        load_state_dict(write(tmp_path / "magic.pth", pickle.dumps(12345, protocol=2) + good[len(magic) :]))
    version = pickle.dumps(1001, protocol=2)
    with pytest.raises(ValueError, match=r"unsupported torch\.save protocol"):
        old_protocol = magic + pickle.dumps(1000, protocol=2) + good[len(magic + version) :]
        load_state_dict(write(tmp_path / "v.pth", old_protocol))

    zip_format = b"PK\x03\x04" + bytes(60)  # what torch.save writes since 1.6
    with pytest.raises(REFUSED):
        load_state_dict(write(tmp_path / "zip.pth", zip_format))
