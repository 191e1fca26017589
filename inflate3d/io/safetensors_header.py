"""The one safetensors header validation, used by every read path (loader, lazy reader, others).

Torch-free, so callers that only need names, shapes and dtypes never import torch. It refuses what
the safetensors library refuses, so two readers never disagree about a file: a header that does not
start with ``{``, invalid or over-deep JSON, duplicate names, numbers too long to be sizes, shapes
that are not lists of non-negative integers (``true`` is not 1), unknown dtypes, metadata that is
not a map of strings to strings, and offsets that overlap, leave gaps, or do not end exactly at the
end of the file.
"""
from __future__ import annotations

import json
import os
from math import prod
from pathlib import Path
from typing import IO

from ..errors import Inflate3dError
from .checkpoint import beyond_int64, only_ints

MAX_HEADER = 100_000_000  # the safetensors library's limit
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1}


_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # digits -> b"0", the rest -> b" "


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _Refused(f"duplicate name {dup[:80]!r}")
    return out


def _small_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:  # sizes and offsets are 64-bit
        raise _Refused(f"a {len(text)}-digit number")
    return int(text)


def _no_float(text: str) -> float:
    raise _Refused(f"a non-integer number {text[:40]}")


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict], dict[str, str], int]:
    """(tensors {name: {dtype, shape, data_offsets}} in file order, metadata, data start)."""
    path = Path(path)
    with open(path, "rb") as f:
        return parse_header(f, path)


def parse_header(f: IO[bytes], path: Path) -> tuple[dict[str, dict], dict[str, str], int]:
    """Validate the header of the open file ``f`` (read from its start; the size is the open
    file's, so a file replaced meanwhile under the same name cannot mix in)."""
    size = os.fstat(f.fileno()).st_size
    raw = os.pread(f.fileno(), 8, 0)
    if len(raw) < 8:
        raise Inflate3dError(f"{path}: truncated safetensors file (no header)")
    n = int.from_bytes(raw, "little")  # (struct would be one more module to import)
    if n > min(size - 8, MAX_HEADER):
        raise Inflate3dError(f"{path}: safetensors header claims {n} bytes but the file has "
                             f"{size - 8}; the file is truncated or corrupt")
    text = os.pread(f.fileno(), n, 8)
    if len(text) != n or not text.startswith(b"{"):
        raise Inflate3dError(f"{path}: invalid safetensors header (it must be a JSON object)")
    # a number of more than 20 digits has 21 digits in a row: without such a run, no int needs
    # checking as it is parsed (a thousand calls fewer; a name with such a run takes the checks)
    hooks = {"parse_int": _small_int} if b"0" * 21 in text.translate(_DIGITS) else {}
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_no_float,
                            parse_constant=_no_float, **hooks)
    except _Refused as e:
        raise Inflate3dError(f"{path}: invalid safetensors header ({e})") from None
    except RecursionError:
        raise Inflate3dError(f"{path}: invalid safetensors header (JSON nested too deep)") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise Inflate3dError(f"{path}: invalid safetensors header ({str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise Inflate3dError(f"{path}: invalid safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata  # null is allowed, [] is not
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise Inflate3dError(f"{path}: invalid safetensors metadata (it must map names to strings)")
    entries = []
    for name, info in header.items():  # one entry each for a thousand tensors: no generators here
        entry = info if type(info) is dict else {}
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if type(dtype) is not str or dtype not in DTYPE_SIZES or type(shape) is not list \
                or type(offsets) is not list or len(offsets) != 2 or not only_ints(offsets) or min(offsets) < 0 \
                or shape and (not only_ints(shape) or min(shape) < 0):
            raise Inflate3dError(f"{path}: invalid safetensors entry {name[:200]!r} (dtype, shape or offsets)")
        begin, end = offsets
        numel = prod(shape)
        if numel >= 2**63 or not numel and beyond_int64(shape):  # [10**19, 0] has no values: no tensor has it
            raise Inflate3dError(f"{path}: tensor {name[:200]!r} has shape {shape!r:.200}, which no tensor "
                                 "can have; the file is corrupt or hostile")
        nbytes = numel * DTYPE_SIZES[dtype]
        if begin > end or end - begin != nbytes:
            raise Inflate3dError(f"{path}: tensor {name[:200]!r} has offsets {begin}..{end} for {nbytes} bytes")
        entries.append((begin, end, name))
    data = size - 8 - n
    entries.sort()
    expected = 0
    for begin, end, name in entries:  # back to back: no overlap (aliasing), no gap
        if begin != expected:
            what = "overlaps the tensor before it" if begin < expected else f"leaves a gap at byte {expected}"
            if begin > data:
                what = f"starts at byte {begin} of a {data}-byte data section; the file is truncated"
            raise Inflate3dError(f"{path}: tensor {name[:200]!r} {what}")
        expected = end
    if expected != data:
        what = "the file is truncated" if expected > data else f"{data - expected} bytes follow the last tensor"
        raise Inflate3dError(f"{path}: the tensors cover {expected} bytes of a {data}-byte data section; {what}")
    ordered = {name: header[name] for _, _, name in entries}
    return ordered, dict(metadata), 8 + n
