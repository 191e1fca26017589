"""Tensors one at a time: a safetensors file is read tensor by tensor with positioned reads (no
mmap, so pages already compared do not stay resident); other formats are loaded whole once.

The header is validated (``safetensors_header``, the one validation every reader uses) before
anything is allocated. The file is opened once and held for the reader's whole life, so a file
atomically replaced under the same name during a long ``diff`` cannot mix one header's offsets
with another file's bytes.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import Inflate3dError
from .safetensors_header import parse_header, read_header
from .save import ST_DTYPES

ST_TORCH = {name: dtype for dtype, name in ST_DTYPES.items()}  # safetensors dtype name -> torch

__all__ = ["SafetensorsFile", "TensorFile", "read_header"]


class SafetensorsFile:
    """One open safetensors file: its validated header, and ``get(k)`` by positioned reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._f = open(path, "rb")  # noqa: SIM115 - held until close()
        except OSError as e:
            raise Inflate3dError(f"{path}: cannot be read ({e.strerror or e})") from None
        try:
            self.header, self.metadata, self._start = parse_header(self._f, path)
        except BaseException:
            self._f.close()
            raise

    def get(self, key: str) -> torch.Tensor:
        info = self.header[key]
        begin, end = info["data_offsets"]
        dtype = ST_TORCH[info["dtype"]]
        buf = bytearray(end - begin)
        view, got = memoryview(buf), 0
        while got < len(buf):
            n = os.preadv(self._f.fileno(), [view[got:]], self._start + begin + got)
            if n <= 0:
                raise Inflate3dError(f"{self.path}: truncated while reading {key[:200]!r}")
            got += n
        if not buf:
            return torch.empty(info["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TensorFile:
    """``keys()``, ``shape(k)``, ``dtype(k)`` without reading data; ``get(k)`` reads one tensor.

    ``TensorFile.of(x)`` takes a path or an already open ``TensorFile`` (returned as it is), so that
    a caller holding one can hand it on instead of having the file opened, and read, again."""

    @classmethod
    def of(cls, src: str | os.PathLike | TensorFile, *, trust_pickle: bool = False) -> TensorFile:
        return src if isinstance(src, TensorFile) else cls(src, trust_pickle=trust_pickle)

    def __init__(self, path: str | os.PathLike, *, trust_pickle: bool = False) -> None:
        from .load import hf_folder, load_checkpoint, sniff_format

        self.origin = str(path)  # as given: what messages name (a Hugging Face folder, not its file)
        self.path, record = hf_folder(Path(path))
        self.format = sniff_format(self.path)
        self._tensors: dict[str, torch.Tensor] | None = None
        self._st: SafetensorsFile | None = None
        self.container = "huggingface folder" if record else None
        if self.format == "safetensors":
            self._st = SafetensorsFile(self.path)
            self._header, self.metadata = self._st.header, self._st.metadata
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
        assert self._st is not None
        return self._st.get(key)

    def close(self) -> None:
        if self._st is not None:
            self._st.close()

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        st = getattr(self, "_st", None)
        if st is not None:
            st.close()
