"""Proof of a written file from its bytes on disk: reopen it, read every tensor back and compare it
bit for bit (and its name, order, shape, dtype) with what was meant to be written.

Commands write to a temporary file, call ``prove_file`` on it and only then rename it: a writer
that loses bytes (a freed buffer, a strided view written as if contiguous, a disk that lies) fails
here, with exit 1, and nothing is left behind.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..errors import CHECK_FAILED, Inflate3dError


def prove_file(path: Path, expected: Iterable[tuple[str, torch.Tensor]], *, origin: str,
               metadata: Mapping[str, str] | None = None, keep: dict[str, torch.Tensor] | None = None):
    """Read ``path`` back (a safetensors file tensor by tensor, anything else whole) and compare it
    with ``expected``; returns the file, opened (``keys()``, ``get(key)``, ``metadata``).
    ``metadata``, when given, must be what the file records. ``keep``: a dict that receives every
    tensor read back, each in memory of its own (for a caller that checks them further: the file
    is read once)."""
    from .lazy import TensorFile

    try:
        written = TensorFile(path)
    except Inflate3dError as e:
        raise Inflate3dError(f"{origin}: the written file cannot be read back ({e}); nothing was written",
                             exit_code=CHECK_FAILED) from None
    if metadata is not None and dict(written.metadata) != {str(k): str(v) for k, v in metadata.items()}:
        raise Inflate3dError(f"{origin}: the metadata read back from the written file differs from "
                             "what was written; nothing was written", exit_code=CHECK_FAILED)
    compare_written(written, expected, origin=origin, keep=keep)
    return written


def compare_written(written, expected: Iterable[tuple[str, torch.Tensor]], *, origin: str,
                    keep: dict[str, torch.Tensor] | None = None) -> int:
    """``written``: a mapping or a ``TensorFile`` (``keys()`` and ``get(key)``) read from disk;
    ``keep``: see ``prove_file``."""
    if isinstance(written, Mapping):
        get = written.__getitem__
    elif keep is None and hasattr(written, "max_nbytes"):  # one tensor at a time into one reused buffer
        buf = torch.empty(written.max_nbytes(), dtype=torch.uint8)
        get = lambda key: written.get(key, buf)  # noqa: E731
    else:
        get = written.get
    keys = list(written.keys())
    present = set(keys)
    names, differ = [], []
    for name, t in expected:
        names.append(name)
        try:
            got = get(name) if name in present else None
            same = got is not None and bit_equal(got, t.detach().cpu())
            if keep is not None and got is not None:
                keep[name] = got
        except Inflate3dError as e:  # a damaged file read lazily
            raise Inflate3dError(f"{origin}: the written file cannot be read back ({e}); nothing was "
                                 "written", exit_code=CHECK_FAILED) from None
        if name in present and not same:
            differ.append(name)
    if names != keys:
        missing = [k for k in names if k not in keys]
        extra = [k for k in keys if k not in names]
        what = f"missing {', '.join(missing[:3])}" if missing else \
            f"unexpected {', '.join(extra[:3])}" if extra else "tensors in another order"
        raise Inflate3dError(f"{origin}: the written file does not hold the tensors meant for it ({what}); "
                             "nothing was written", exit_code=CHECK_FAILED)
    if differ:
        raise Inflate3dError(f"{origin}: {len(differ)} tensors read back from the written file differ "
                             f"from what was written ({', '.join(differ[:3])}); nothing was written",
                             exit_code=CHECK_FAILED)
    return len(names)


_SAME_WIDTH_INT = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (NaN payloads included, unlike ``torch.equal``)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        width = _SAME_WIDTH_INT[a.element_size()]
        return bool(torch.equal(a.contiguous().view(width), b.contiguous().view(width)))
    return bool(torch.equal(a, b))
