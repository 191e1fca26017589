"""PySlowFast's Caffe2 checkpoints: a pickle of ``{'blobs': {name: ndarray}}`` (Python 2, latin1).

Read with an unpickler that can build numpy arrays and plain containers and nothing else: any
other global (a function, a class) is refused with its name, before anything runs.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import Inflate3dError

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    ("collections", "OrderedDict"),
}


class _ArraysOnly(pickle._Unpickler):  # the pure-Python unpickler: see first_object
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")
        return super().find_class(module, name)


def first_object(path: Path) -> Any:
    """The file's first pickled object, unpickled with the arrays-only unpickler.

    The pure-Python unpickler keeps its memo in a dict; the C one sizes an array by the largest
    memo index, so a damaged BINPUT index of 2**32 made it allocate for minutes (found by fuzzing).
    """
    with open(path, "rb") as f:
        return _ArraysOnly(f, encoding="latin1").load()


def read_blobs(path: Path, obj: Any) -> dict[str, torch.Tensor]:
    import numpy as np

    blobs = obj.get("blobs", obj) if isinstance(obj, dict) else None
    if not isinstance(blobs, dict) or not blobs:
        raise Inflate3dError(f"{path}: a pickle without a 'blobs' dict of arrays; not a Caffe2 checkpoint")
    bad = [str(k) for k, v in blobs.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise Inflate3dError(f"{path}: Caffe2 blobs that are not arrays: {', '.join(bad[:5])}")
    out = {}
    for name, array in blobs.items():
        if array.dtype.kind not in "fiub":
            raise Inflate3dError(f"{path}: blob {name} has unsupported dtype {array.dtype}")
        out[str(name)] = torch.from_numpy(np.ascontiguousarray(array))
    return out


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
