"""PySlowFast's Caffe2 checkpoints: a pickle of ``{'blobs': {name: ndarray}}`` (Python 2, latin1).

Read with an unpickler that can build numeric numpy arrays and plain containers and nothing else:
any other global (a function, a class) is refused with its name, before anything runs. The few
allowed callables are wrapped so that they only do what array data needs, and every allocation
they make is charged to a budget the size of the file: a 112-byte pickle cannot ask numpy for
4.7 GB, nor chain ``_codecs.encode`` into gigabytes.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Inflate3dError

if TYPE_CHECKING:
    import torch

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    ("__builtin__", "bytes"), ("builtins", "bytes"),  # ... and b"" (an empty blob's data): bytes() only
    ("collections", "OrderedDict"),
}
# The dtypes a blob may have: those torch.from_numpy takes (no longdouble, objects or records).
DTYPES = {np.dtype(c) for c in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "?")}


class _Budget(pickle.UnpicklingError):
    pass


class _NDArray:
    """What the pickle gets for ``numpy.ndarray``: a marker for ``_reconstruct``, not callable."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray called directly")


def _empty_bytes(*args) -> bytes:
    """``bytes()``, as Python 3 pickles ``b""`` at protocol 2; ``bytes(n)`` would allocate n bytes."""
    if args:
        raise pickle.UnpicklingError("bytes() with arguments: only the empty bytes are allowed")
    return b""


def _dtype(path: Path, value: Any) -> np.dtype:
    try:
        dt = value if isinstance(value, np.dtype) else np.dtype(value) \
            if isinstance(value, (str, bytes)) and len(value) <= 8 else None
    except TypeError:
        dt = None
    if dt is None:
        raise pickle.UnpicklingError(f"not a dtype: {type(value).__name__}")
    if dt.newbyteorder("<") not in DTYPES or dt.byteorder == ">":
        raise Inflate3dError(f"{path}: a blob has dtype {dt} ({dt.str}); only little-endian float16/32/64, "
                             "int8/16/32/64, uint8 and bool blobs can be read")
    return dt


class _ArraysOnly(pickle._Unpickler):  # the pure-Python unpickler: see first_object
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, f, path: Path, budget: int) -> None:
        super().__init__(f, encoding="latin1")
        self.path, self.left = path, budget
        self._ndarray = _NDArray()

    def _spend(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise _Budget("arrays larger than the file itself")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")
        return {"_reconstruct": self._reconstruct, "scalar": self._scalar, "ndarray": self._ndarray,
                "dtype": self._make_dtype, "encode": self._encode, "OrderedDict": OrderedDict,
                "bytes": _empty_bytes}[name]

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not self._ndarray or not isinstance(shape, tuple) \
                or not all(type(d) is int and d >= 0 for d in shape):
            raise pickle.UnpicklingError("_reconstruct of something other than an ndarray")
        dt = _dtype(self.path, dtype)
        self._spend(int(np.prod(shape, dtype=object)) * dt.itemsize)
        return np.ndarray.__new__(np.ndarray, shape, dt)

    def _scalar(self, dtype, data=None):
        dt = _dtype(self.path, dtype)
        if not isinstance(data, bytes) or len(data) != dt.itemsize:
            raise pickle.UnpicklingError("a numpy scalar without its bytes")
        return np.frombuffer(data, dt)[0]

    def _make_dtype(self, obj, align=False, copy=True):
        return _dtype(self.path, obj)

    def _encode(self, obj, encoding="utf-8", errors="strict"):
        if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(f"_codecs.encode to {str(encoding)[:20]!r}: only latin1 text is allowed")
        self._spend(len(obj))
        return obj.encode("latin1")

    def load_build(self) -> None:
        """BUILD only sets an array's contents (sized by its bytes) or a plain dtype's byte order."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            ok = isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple) \
                and all(type(d) is int and d >= 0 for d in state[1]) and isinstance(state[4], (bytes, str))
            if not ok:
                raise pickle.UnpicklingError("an array state that is not (version, shape, dtype, order, bytes)")
            dt = _dtype(self.path, state[2])
            nbytes = int(np.prod(state[1], dtype=object)) * dt.itemsize
            if nbytes != len(state[4]):
                raise pickle.UnpicklingError(f"an array of {nbytes} bytes holding {len(state[4])}")
            self._spend(nbytes)
            inst.__setstate__((state[0], state[1], dt, bool(state[3]), state[4]))
        elif isinstance(inst, np.dtype):
            if not (isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", "|", "=")
                    and state[2:] == (None, None, None, -1, -1, 0)):
                raise pickle.UnpicklingError("a dtype state other than a plain little-endian number")
        else:
            raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__}")

    dispatch[pickle.BUILD[0]] = load_build


def first_object(path: Path) -> Any:
    """The file's first pickled object, unpickled with the arrays-only unpickler.

    The pure-Python unpickler keeps its memo in a dict; the C one sizes an array by the largest
    memo index, so a damaged BINPUT index of 2**32 made it allocate for minutes (found by fuzzing).
    """
    from .pickle_scan import _Capped

    size = path.stat().st_size
    with open(path, "rb") as f:
        return _ArraysOnly(_Capped(f, size), path, budget=size + 2**16).load()


def blob_arrays(path: Path, obj: Any) -> dict[str, np.ndarray]:
    """The blobs of a Caffe2 pickle's first object, checked: a dict of numeric arrays."""
    from .checkpoint import text

    blobs = obj.get("blobs", obj) if isinstance(obj, dict) else None
    if not isinstance(blobs, dict) or not blobs:
        raise Inflate3dError(f"{path}: a pickle without a 'blobs' dict of arrays; not a Caffe2 checkpoint")
    bad = [text(k) for k, v in blobs.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise Inflate3dError(f"{path}: Caffe2 blobs that are not arrays: {', '.join(bad[:5])}")
    for name, array in blobs.items():
        if array.dtype not in DTYPES:  # the unpickler builds no other; a safeguard
            raise Inflate3dError(f"{path}: blob {text(name)} has unsupported dtype {array.dtype}")
    return {text(name): array for name, array in blobs.items()}


def read_blobs(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    import torch

    return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in blob_arrays(path, obj).items()}


def write_blobs(f, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """``{'blobs': {...}}`` as PySlowFast's Caffe2 loader reads it (float tensors as float32)."""
    blobs = {}
    for name, t in tensors.items():
        t = t.detach().cpu()
        blobs[name] = (t.float() if t.is_floating_point() else t).numpy()
    buf = io.BytesIO()
    # protocol 4: raw bytes (protocol 2 stores them as latin1 text, 1.5x larger); PySlowFast reads
    # it with pickle.load(f, encoding="latin1") like its own files.
    pickle.dump({"blobs": blobs, "inflate3d": dict(metadata)}, buf, protocol=4)
    f.write(buf.getvalue())
