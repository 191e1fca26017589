"""Tensors one at a time: a safetensors file, and a torch zip (its structure read without torch's
loader, its members being stored), are read tensor by tensor with positioned reads (no mmap, so
pages already compared do not stay resident); other formats are loaded whole once.

The header is validated (``safetensors_header``, the one validation every reader uses) before
anything is allocated. The file is opened once and held for the reader's whole life, so a file
atomically replaced under the same name during a long ``diff`` cannot mix one header's offsets
with another file's bytes.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import Inflate3dError
from .arena import fill
from .checkpoint import text
from .safetensors_header import parse_header, read_header
from .save import ST_DTYPES

ST_TORCH = {name: dtype for dtype, name in ST_DTYPES.items()}  # safetensors dtype name -> torch

__all__ = ["SafetensorsFile", "TensorFile", "read_header"]


class SafetensorsFile:
    """One open safetensors file: its validated header, and ``get(k)`` by positioned reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = _open(path)
        try:
            self.header, self.metadata, self._start = parse_header(self._f, path)
        except BaseException:
            self._f.close()
            raise

    def get(self, key: str, out: torch.Tensor | None = None) -> torch.Tensor:
        """Tensor ``key``, read into memory of its own; or, with ``out`` (a 1-D uint8 tensor at least
        as large as the tensor's bytes), into ``out``'s first bytes, a view of which is returned:
        a reader that looks at one tensor at a time reuses one buffer instead of faulting in fresh
        pages for every tensor."""
        info = self.header[key]
        begin, end = info["data_offsets"]
        raw = torch.empty(end - begin, dtype=torch.uint8) if out is None else out[:end - begin]
        self._pread_into(raw, self._start + begin, key)
        return typed(raw, ST_TORCH[info["dtype"]], info["shape"])

    def keys(self) -> list[str]:
        return list(self.header)

    @property
    def data_start(self) -> int:
        """Where the data section begins (the header's offsets count from here)."""
        return self._start

    def max_nbytes(self) -> int:
        """The size in bytes of the largest tensor (for ``get(key, out=...)``)."""
        return max((i["data_offsets"][1] - i["data_offsets"][0] for i in self.header.values()), default=0)

    def read_all(self, sink: Callable[[memoryview], object] | None = None) -> dict[str, torch.Tensor]:
        """Every tensor, each in memory of its own, read in file order; ``sink`` (a hash's
        ``update``) is handed every byte of the file once, in order, header included: the file is
        read once, whoever else needs its bytes."""
        fd = self._f.fileno()
        if sink is not None:
            head = torch.empty(self._start, dtype=torch.uint8)
            self._pread_into(head, 0, "the header")
            sink(_bytes_of(head))
        tensors = {}
        for key, info in self.header.items():  # in offset order: back to back
            begin, end = info["data_offsets"]
            raw = torch.empty(end - begin, dtype=torch.uint8)
            self._pread_into(raw, self._start + begin, key)
            if sink is not None and raw.numel():
                sink(_bytes_of(raw))
            tensors[key] = typed(raw, ST_TORCH[info["dtype"]], info["shape"])
        if sink is not None:  # bytes after the data section (the file grew since it was opened)
            pos = self._start + max((i["data_offsets"][1] for i in self.header.values()), default=0)
            while block := os.pread(fd, 1 << 20, pos):
                sink(memoryview(block))
                pos += len(block)
        return tensors

    def _pread_into(self, raw: torch.Tensor, offset: int, what: str) -> None:
        _pread_into(self._f, self.path, raw, offset, what)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open(path: Path):
    try:
        return open(path, "rb")  # noqa: SIM115 - held by the reader until close()
    except OSError as e:
        raise Inflate3dError(f"{path}: cannot be read ({e.strerror or e})") from None


def _pread_into(f, path: Path, raw: torch.Tensor, offset: int, what: str) -> None:
    """Fill the 1-D uint8 tensor ``raw`` from ``f`` at ``offset`` (positioned reads: no shared seek)."""
    if raw.numel() and not fill(f.fileno(), _bytes_of(raw), offset):
        raise Inflate3dError(f"{path}: truncated while reading {what[:200]!r}")


class TorchZipFile:
    """One open torch zip checkpoint (what ``torch.save`` writes): its structure from ``data.pkl``
    (``io.structure``, no torch load), and ``get(k)`` reading only that tensor's bytes, in place
    (torch stores members uncompressed). A file this cannot read in place raises ``NeedsTorch``.

    Every storage read is checked against the zip's CRC-32, as the loader's whole-file check does:
    a flipped byte is a corrupt file, not a difference in values (torch.load itself does not
    check). A tensor that views part of its storage has the whole storage read once, for the check."""

    def __init__(self, path: Path) -> None:
        from .structure import NeedsTorch
        from .torch_zip import torch_zip_layout

        self.path = path
        self._f = _open(path)
        try:
            self.checkpoint, self._layouts = torch_zip_layout(path, self._f)
            if self._layouts is None:
                raise NeedsTorch("compressed or big-endian members")
        except BaseException:
            self._f.close()
            raise
        self._checked: set[str] = set()  # members whose bytes matched their CRC-32

    def get(self, key: str) -> torch.Tensor:
        from .structure import ITEMSIZE

        at = self._layouts[key]
        dtype = getattr(torch, at.dtype)
        itemsize = ITEMSIZE[at.dtype]
        if any(n == 0 for n in at.shape):
            return torch.empty(at.shape, dtype=dtype)
        span = 1 + sum((n - 1) * s for n, s in zip(at.shape, at.stride))  # values from the first to the last
        first, member = at.offset * itemsize, at.member
        if member.name in self._checked or (first == 0 and span * itemsize == member.size):
            raw = torch.empty(span * itemsize, dtype=torch.uint8)
            _pread_into(self._f, self.path, raw, at.start + first, key)
            whole = raw
        else:  # part of a storage: the whole of it, once, for its CRC
            whole = torch.empty(member.size, dtype=torch.uint8)
            _pread_into(self._f, self.path, whole, at.start, key)
            raw = whole[first:first + span * itemsize]
        if member.name not in self._checked:
            if zlib.crc32(_bytes_of(whole)) != member.crc:
                raise Inflate3dError(f"{self.path}: corrupt torch zip checkpoint (bad member {text(member.name, 200)}: "
                                     "its bytes do not match their CRC-32); the file is damaged")
            self._checked.add(member.name)
        t = raw.view(dtype).as_strided(at.shape, at.stride)
        return t if t.is_contiguous() else t.contiguous()  # a view with strides of its own: made whole

    def close(self) -> None:
        self._f.close()


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
        self._zip: TorchZipFile | None = None
        if self.format == "safetensors":
            self._st = SafetensorsFile(self.path)
            self._header, self.metadata = self._st.header, self._st.metadata
            self.metadata.update(record)
            return
        if self.format == "torch-zip":
            from .checkpoint import strip_prefix
            from .structure import NeedsTorch

            try:
                self._zip = TorchZipFile(self.path)
            except NeedsTorch:
                pass
            else:  # tensor by tensor, in place; names as the loader gives them (prefix stripped)
                ckpt = self._zip.checkpoint
                original = list(ckpt.tensors)
                strip_prefix(ckpt)
                self._names = dict(zip(ckpt.tensors, original))
                self._meta, self.metadata, self.container = ckpt.tensors, ckpt.metadata, ckpt.container
                return
        ckpt = load_checkpoint(self.path, trust_pickle=trust_pickle)
        self.format, self._tensors, self.metadata = ckpt.format, ckpt.tensors, ckpt.metadata
        self.container = ckpt.container

    def keys(self) -> list[str]:
        if self._zip is not None:
            return list(self._meta)
        return list(self._tensors if self._tensors is not None else self._header)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._zip is not None:
            return tuple(self._meta[key].shape)
        return tuple(self._tensors[key].shape) if self._tensors is not None else tuple(self._header[key]["shape"])

    def dtype(self, key: str) -> torch.dtype:
        if self._zip is not None:
            return getattr(torch, self._meta[key].dtype)
        return self._tensors[key].dtype if self._tensors is not None else ST_TORCH[self._header[key]["dtype"]]

    def get(self, key: str, out: torch.Tensor | None = None) -> torch.Tensor:
        """Tensor ``key``; ``out``: see ``SafetensorsFile.get`` (ignored for a file loaded whole or a
        torch zip, whose tensors may be views with strides of their own)."""
        if self._zip is not None:
            return self._zip.get(self._names[key])
        if self._tensors is not None:
            return self._tensors[key]
        assert self._st is not None
        return self._st.get(key, out)

    def max_nbytes(self) -> int:
        if self._st is not None:
            return self._st.max_nbytes()
        if self._zip is not None:
            return max((t.nbytes for t in self._meta.values()), default=0)
        return max((t.numel() * t.element_size() for t in self._tensors.values()), default=0)

    def close(self) -> None:
        for f in (self._st, self._zip):
            if f is not None:
                f.close()

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        for f in (getattr(self, "_st", None), getattr(self, "_zip", None)):
            if f is not None:
                f.close()


def typed(raw: torch.Tensor, dtype: torch.dtype, shape) -> torch.Tensor:
    """The bytes of the 1-D uint8 tensor ``raw`` as a tensor of ``dtype`` and ``shape``: a view, or
    a copy where ``raw`` starts at an offset of its storage that the dtype cannot be viewed at."""
    if raw.storage_offset() % dtype.itemsize:
        raw = raw.clone()
    return raw.view(dtype).reshape(shape)


def _bytes_of(raw: torch.Tensor) -> memoryview:
    """A writable byte view of a contiguous 1-D uint8 tensor's memory (no copy)."""
    return memoryview(raw.numpy()).cast("B")
