"""A checkpoint's structure without its values, and without torch: names, shapes, dtypes, container,
metadata. ``inspect`` needs nothing more, and reading it costs what reading the header costs.

- safetensors: the header (``safetensors_header``, the one validation every reader uses).
- torch zip: ``data.pkl`` alone (``torch_zip``: an unpickler that builds shape records where
  torch would build tensors); the storages are never read, only their sizes checked.
- Caffe2 pickles: the arrays-only unpickler (numpy, no torch); the arrays are in the pickle itself,
  so this reads the file.

Whatever this reader does not know (a legacy torch pickle, a global outside the few a state dict
uses, a sparse tensor) raises ``NeedsTorch``: the caller then loads the file with ``load`` (torch,
``weights_only``), which gives the authoritative answer or refusal. Nothing here runs code from the
file: the unpickler resolves a fixed set of names to local functions.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import Inflate3dError
from .checkpoint import Checkpoint, hf_folder, metadata_text, sniff_format, strip_prefix

ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2,
            "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16, "uint16": 2, "uint32": 4,
            "uint64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}
# safetensors' dtype names -> torch's
_SAFETENSORS = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16",
                "U32": "uint32", "U64": "uint64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
_NUMPY = {"f2": "float16", "f4": "float32", "f8": "float64", "i1": "int8", "i2": "int16", "i4": "int32",
          "i8": "int64", "u1": "uint8", "b1": "bool"}


class NeedsTorch(Exception):
    """This file's structure cannot be read without torch's own loader."""


class TensorMeta:
    """What a tensor is without its values: the parts of ``torch.Tensor`` that shape code reads.
    (A plain class: a dataclass costs milliseconds of start-up, a tenth of inspect's budget.)"""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.shape = shape
        self.dtype = dtype  # torch's name without 'torch.': 'float32', 'int64', ...

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorMeta) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype))

    def __repr__(self) -> str:
        return f"TensorMeta(shape={self.shape}, dtype={self.dtype!r})"

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel() * ITEMSIZE.get(self.dtype, 0)


def cat_rows(parts: list):
    """``torch.cat(parts, 0)``; for shape records, the record of the result (q, k and v stacked into
    one ``qkv``). Records that torch would refuse or promote raise ``TypeError``: the tensors decide."""
    if all(isinstance(p, TensorMeta) for p in parts):
        first = parts[0]
        if any(p.dim() != first.dim() or p.dim() == 0 or p.shape[1:] != first.shape[1:] or p.dtype != first.dtype
               for p in parts):
            raise TypeError("shape records that torch.cat would refuse or promote")
        return TensorMeta((sum(p.shape[0] for p in parts), *first.shape[1:]), first.dtype)
    import torch

    return torch.cat(parts, 0)


def read_structure(path: str | os.PathLike) -> Checkpoint:
    """The file's ``Checkpoint`` with ``TensorMeta`` records for tensors. Raises ``NeedsTorch`` when
    only torch's loader can tell, ``Inflate3dError`` for a file that is certainly bad."""
    path, record = hf_folder(Path(path))
    fmt = sniff_format(path)
    if fmt == "safetensors":
        ckpt = _safetensors(path)
        if record:
            ckpt.container, ckpt.metadata = "huggingface folder", {**ckpt.metadata, **record}
    elif fmt == "torch-zip":
        from .torch_zip import torch_zip_layout

        ckpt = torch_zip_layout(path, layouts=False)[0]
    else:
        ckpt = _caffe2(path)
    strip_prefix(ckpt)
    return ckpt


def _safetensors(path: Path) -> Checkpoint:
    from .safetensors_header import read_header

    header, metadata, _ = read_header(path)
    tensors = {}
    for name, info in header.items():
        dtype = _SAFETENSORS.get(info["dtype"])
        if dtype is None:
            raise NeedsTorch(f"dtype {info['dtype']}")
        tensors[name] = TensorMeta(tuple(info["shape"]), dtype)
    return Checkpoint(path, "safetensors", tensors, metadata=dict(metadata))


# --- Caffe2 --------------------------------------------------------------------------------------

def _caffe2(path: Path) -> Checkpoint:
    """A Caffe2 pickle's blobs as shape records (numpy reads them; torch is not needed). A legacy
    torch pickle (its first object is torch's magic number) needs torch."""
    from . import caffe2
    from .pickle_scan import prescan

    prescan(path, pickles=1)
    try:
        first = caffe2.first_object(path)
    except Inflate3dError:
        raise
    except Exception as e:  # noqa: BLE001 - refused globals, damage: the loader words the error
        raise NeedsTorch(f"{type(e).__name__}: {e}") from None
    if isinstance(first, int):
        raise NeedsTorch("a legacy torch pickle")
    meta = first.get("inflate3d") if isinstance(first, dict) else None
    if meta is not None and not isinstance(meta, dict):
        raise Inflate3dError(f"{path}: its 'inflate3d' metadata is a {type(meta).__name__}, not a mapping")
    blobs = caffe2.blob_arrays(path, first)
    tensors = {name: TensorMeta(tuple(a.shape), _NUMPY[a.dtype.kind + str(a.dtype.itemsize)])
               for name, a in blobs.items()}
    return Checkpoint(path, "caffe2-pickle", tensors, container="blobs", metadata=metadata_text(meta or {}))
