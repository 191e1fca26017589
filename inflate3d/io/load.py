"""Load a checkpoint safely: safetensors, or ``torch.load(weights_only=True)``; never run code.

Formats are told apart by their first bytes, not their file names. A pickle that needs code to
unpickle is refused with the globals it asks for; ``trust_pickle=True`` is the explicit way past.
Containers (``state_dict``, ``model_state``, ``model``) and ``module.`` prefixes are unwrapped.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import Inflate3dError
from ..paths import check_readable as _check_readable

CONTAINER_KEYS = ("state_dict", "model_state", "model")
PREFIXES = ("module.", "model.")  # DataParallel; PySlowFast's wrapper around pytorchvideo nets


@dataclass
class Checkpoint:
    """Tensors by name in file order, with where they came from."""

    path: Path
    format: str  # 'safetensors' | 'torch-zip' | 'torch-pickle' | 'caffe2-pickle'
    tensors: dict[str, torch.Tensor]
    container: str | None = None  # the key that held the weights, if any
    prefix: str | None = None  # the prefix stripped from every key, if any
    metadata: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # non-weight entries left out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_in_background(path: Path):
    """Start hashing ``path`` on a thread (hashlib releases the GIL); call the result to wait."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(sha256_file, path)
    pool.shutdown(wait=False)
    return future.result


def sniff_format(path: Path) -> str:
    """'safetensors', 'torch-zip' or 'torch-pickle', from the file's first bytes."""
    _check_readable(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise Inflate3dError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(head) == 0:
        raise Inflate3dError(f"{path}: the file is empty; point to a checkpoint file")
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    # safetensors before pickle: its header length's first byte may well be 0x80
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size:
        return "safetensors"
    if head[:1] == b"\x80":
        return "torch-pickle"
    raise Inflate3dError(f"{path}: not a safetensors, torch zip or pickle checkpoint "
                         f"(first bytes {head[:8]!r})")


def load_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False) -> Checkpoint:
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "safetensors":
        tensors, metadata = _load_safetensors(path)
        ckpt = Checkpoint(path, fmt, tensors, metadata=metadata)
    elif fmt == "torch-pickle" and (blobs := _caffe2_blobs(path, trust_pickle)) is not None:
        ckpt = Checkpoint(path, "caffe2-pickle", blobs[0], container="blobs", metadata=blobs[1])
    else:
        obj = _torch_load(path, zipped=fmt == "torch-zip", trust_pickle=trust_pickle)
        ckpt = _unwrap(path, fmt, obj)
    _strip_prefix(ckpt)
    bad = [name for name, t in ckpt.tensors.items() if not _finite(t)]
    if bad:
        warnings.warn(f"{path}: NaN or Inf values in {', '.join(bad[:5])}"
                      f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}", stacklevel=2)
    return ckpt


def _caffe2_blobs(path: Path, trust_pickle: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """A Caffe2 pickle's blobs, or None when the file is a torch legacy pickle (whose first object
    is torch's magic number). Only numpy arrays and containers can be built while looking."""
    from . import caffe2

    try:
        first = caffe2.first_object(path)
    except pickle.UnpicklingError as e:
        found = _GLOBAL_RE.findall(str(e))
        if found and trust_pickle:
            return None  # the user vouches for it: torch.load(weights_only=False) decides
        if found:
            raise _refused(path, found) from None
        raise Inflate3dError(f"{path}: corrupt pickle ({e})") from None
    except Exception as e:  # noqa: BLE001 - the arrays-only unpickler runs no code: a bad file
        raise Inflate3dError(f"{path}: corrupt pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(first, int):
        return None
    meta = first.get("inflate3d") if isinstance(first, dict) else None
    return caffe2.read_blobs(path, first), {str(k): str(v) for k, v in (meta or {}).items()}


def _finite(t: torch.Tensor) -> bool:
    """NaN and Inf propagate through a sum, so one reduction (no copy) screens a tensor; only a
    non-finite sum, which an overflow can also cause, is looked at element by element."""
    if not t.is_floating_point():
        return True
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor, after the header has been validated (see ``lazy.read_header``)."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    from .lazy import read_header

    header, metadata, _ = read_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in header}
    except (SafetensorError, ValueError, TypeError, KeyError, OSError) as e:
        raise Inflate3dError(f"{path}: unreadable safetensors file ({e})") from None
    return tensors, metadata


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def _refused(path: Path, globals_: list[str]) -> Inflate3dError:
    what = ", ".join(globals_) if globals_ else "code"
    return Inflate3dError(f"{path}: refused: unpickling would call {what}. Nothing was run. If you "
                          "trust this file, pass --trust-pickle")


def _torch_load(path: Path, *, zipped: bool, trust_pickle: bool) -> Any:
    if zipped:
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except Exception as e:  # noqa: BLE001 - zipfile on damaged bytes: BadZipFile, but also
            # NotImplementedError (bogus compression method), UnicodeDecodeError (member names)...
            raise Inflate3dError(f"{path}: corrupt torch zip checkpoint ({type(e).__name__}: {e}); the "
                                 "file is truncated or damaged") from None
        if bad is not None:
            raise Inflate3dError(f"{path}: corrupt torch zip checkpoint (bad member {bad})")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=False)
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = _GLOBAL_RE.findall(msg)
        if "weights_only" in msg or found:
            from .pickle_scan import disallowed, pickle_globals

            raise _refused(path, disallowed(pickle_globals(path)) or found) from None
        raise Inflate3dError(f"{path}: corrupt pickle checkpoint ({msg.splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001 - see below
        # The weights_only unpickler runs no code from the file, so whatever it raises on these
        # bytes (IndexError, KeyError, struct.error, MemoryError, ...: fuzzing found them all)
        # means one thing: the file is corrupt.
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise Inflate3dError(f"{path}: unreadable torch checkpoint ({type(e).__name__}: {first})") from None


def _unwrap(path: Path, fmt: str, obj: Any) -> Checkpoint:
    container = None
    dropped: list[str] = []
    outer = obj if isinstance(obj, dict) else {}
    if isinstance(obj, dict) and not _is_tensor_dict(obj):
        for key in CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                container = key
                dropped = [k for k in obj if k != key]
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        advice = ("; save model.state_dict() instead of the model object" if isinstance(obj, torch.nn.Module)
                  else "")
        raise Inflate3dError(f"{path}: holds a {type(obj).__name__}, not a state dict{advice}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    non_tensors = [k for k in obj if k not in tensors]
    if not tensors:
        raise Inflate3dError(f"{path}: no tensors found (keys: {', '.join(map(str, list(obj)[:8]))})")
    if non_tensors:
        raise Inflate3dError(f"{path}: entries that are not tensors where weights are expected: "
                             f"{', '.join(map(str, non_tensors[:8]))}")
    metadata = {}
    for key in ("meta", "inflate3d"):  # mmaction2's {'state_dict', 'meta'}; inflate3d's own record
        if container and isinstance(outer.get(key), dict):
            metadata = {str(k): str(v) for k, v in outer[key].items()}
    return Checkpoint(path, fmt, {str(k): v for k, v in tensors.items()}, container=container,
                      metadata=metadata, dropped=dropped)


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefix(ckpt: Checkpoint) -> None:
    for prefix in PREFIXES:
        if ckpt.tensors and all(k.startswith(prefix) for k in ckpt.tensors):
            ckpt.tensors = {k[len(prefix):]: v for k, v in ckpt.tensors.items()}
            ckpt.prefix = prefix
            return
