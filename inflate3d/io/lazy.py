"""Tensors one at a time: a safetensors file is read tensor by tensor with positioned reads (no
mmap, so pages already compared do not stay resident); other formats are loaded whole once.

The header is validated before anything is allocated: known dtypes, non-negative shapes, offsets
that match each tensor's size and stay inside the file.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

from ..errors import Inflate3dError
from .save import ST_DTYPES

ST_TORCH = {name: dtype for dtype, name in ST_DTYPES.items()}  # safetensors dtype name -> torch
MAX_HEADER = 100 * 2**20


def read_header(path: Path) -> tuple[dict[str, dict], dict[str, str], int]:
    """(tensors {name: {dtype, shape, data_offsets}} in file order, metadata, data start)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise Inflate3dError(f"{path}: truncated safetensors file (no header)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, MAX_HEADER):
            raise Inflate3dError(f"{path}: safetensors header claims {n} bytes but the file has "
                                 f"{size - 8}; the file is truncated or corrupt")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise Inflate3dError(f"{path}: invalid safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise Inflate3dError(f"{path}: invalid safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise Inflate3dError(f"{path}: invalid safetensors metadata (not an object)")
    data = size - 8 - n
    for name, info in header.items():
        ok = isinstance(info, dict) and info.get("dtype") in ST_TORCH \
            and isinstance(info.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in info["shape"]) \
            and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2 \
            and all(isinstance(o, int) for o in info["data_offsets"])
        if not ok:
            raise Inflate3dError(f"{path}: invalid safetensors entry {name!r} (dtype, shape or offsets)")
        begin, end = info["data_offsets"]
        nbytes = math.prod(info["shape"]) * torch.empty((), dtype=ST_TORCH[info["dtype"]]).element_size()
        if not 0 <= begin <= end or end - begin != nbytes:
            raise Inflate3dError(f"{path}: tensor {name} has offsets {begin}..{end} for {nbytes} bytes")
        if end > data:
            raise Inflate3dError(f"{path}: tensor {name} ends at byte {end} of a {data}-byte data "
                                 "section; the file is truncated")
    ordered = dict(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]))
    return ordered, {str(k): str(v) for k, v in metadata.items()}, 8 + n


class TensorFile:
    """``keys()``, ``shape(k)``, ``dtype(k)`` without reading data; ``get(k)`` reads one tensor."""

    def __init__(self, path: str | os.PathLike, *, trust_pickle: bool = False) -> None:
        from .load import hf_folder, load_checkpoint, sniff_format

        self.path, record = hf_folder(Path(path))
        self.format = sniff_format(self.path)
        self._tensors: dict[str, torch.Tensor] | None = None
        self.container = "huggingface folder" if record else None
        if self.format == "safetensors":
            self._header, self.metadata, self._start = read_header(self.path)
            self.metadata.update(record)
        else:
            ckpt = load_checkpoint(self.path, trust_pickle=trust_pickle)
            self.format, self._tensors, self.metadata = ckpt.format, ckpt.tensors, ckpt.metadata
            self.container = ckpt.container

    def keys(self) -> list[str]:
        return list(self._tensors if self._tensors is not None else self._header)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._tensors[key].shape) if self._tensors is not None else tuple(self._header[key]["shape"])

    def dtype(self, key: str) -> torch.dtype:
        return self._tensors[key].dtype if self._tensors is not None else ST_TORCH[self._header[key]["dtype"]]

    def get(self, key: str) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[key]
        info = self._header[key]
        begin, end = info["data_offsets"]
        buf = bytearray(end - begin)
        with open(self.path, "rb") as f:
            f.seek(self._start + begin)
            if f.readinto(buf) != len(buf):
                raise Inflate3dError(f"{self.path}: truncated while reading {key}")
        dtype = ST_TORCH[info["dtype"]]
        if not buf:
            return torch.empty(info["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])
