"""Read a safetensors checkpoint on a thread while ``import torch`` runs.

Importing torch takes one core about 1.5 s here, and reading a source, hashing its file and
digesting its tensors needs no torch: a command starts ``Prefetch(path)`` before its torch import
and ``load_checkpoint(..., prefetched=...)`` picks the bytes up after it. The thread validates the
header with the loader's own parser and does nothing else the loader would not: any problem (not
safetensors, a bad header, a short read, the file replaced meanwhile) leaves ``take()`` empty and
the loader reads the file itself, with its own errors. Reads and hashes release the GIL; each
tensor gets memory of its own (as the loader gives it: a view of a shared buffer could not be
``torch.save``d), filled by one scatter read per ~16 MB, since each return to Python waits for the
importing thread to let go of the GIL.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import common_prefix, sniff_format
from .safetensors_header import parse_header

BLOCK = 16 << 20  # bytes per read: few returns to Python

# the spelling of ``str(torch.<dtype>)`` for each safetensors dtype (the tensors' digest hashes it)
TORCH_DTYPE_NAMES = {"F64": "torch.float64", "F32": "torch.float32", "F16": "torch.float16",
                     "BF16": "torch.bfloat16", "I64": "torch.int64", "I32": "torch.int32",
                     "I16": "torch.int16", "I8": "torch.int8", "U8": "torch.uint8", "BOOL": "torch.bool"}


@dataclass
class Prefetched:
    """A safetensors file read whole: its validated header (file order), metadata, every tensor's
    bytes (in header order, each in memory of its own), the file's sha256 and the digest
    ``inflate.sources.tensors_sha256`` gives for its tensors under their names without ``prefix``
    (None where not asked for)."""

    path: Path
    header: dict[str, dict]
    metadata: dict[str, str]
    data: list[bytearray]
    sha256: str
    tensors_sha256: str | None  # None: not asked for
    prefix: str | None
    identity: tuple[int, int, int, int]


class Prefetch:
    """``Prefetch(path)`` starts reading; ``take()`` waits and returns ``Prefetched`` or None."""

    def __init__(self, path: Path, *, tensors_digest: bool = True) -> None:
        self.path = Path(path)
        self.tensors_digest = tensors_digest
        self._result: Prefetched | None = None
        self._thread = threading.Thread(target=self._run, name="inflate3d-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self.path.is_file() and sniff_format(self.path) == "safetensors":
                self._result = _read(self.path, self.tensors_digest)
        except Exception:  # noqa: BLE001 - the loader reads the file again and reports it in its words
            self._result = None

    def take(self) -> Prefetched | None:
        """The bytes read, if the file at ``path`` is still the one read (same inode, size and
        modification time); else None."""
        self._thread.join()
        got, self._result = self._result, None
        if got is None:
            return None
        try:
            now = _identity(os.stat(got.path))
        except OSError:
            return None
        return got if now == got.identity else None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read(path: Path, tensors_digest: bool) -> Prefetched:
    with open(path, "rb") as f:
        fd = f.fileno()
        before = _identity(os.fstat(fd))
        header, metadata, start = parse_header(f, path)
        file_hash = hashlib.sha256(_pread_exact(fd, start, 0))
        data = [bytearray(end - begin) for begin, end in (i["data_offsets"] for i in header.values())]
        position = start
        for group in _groups(data):  # back to back in the file: one positioned read per group
            views = [memoryview(b) for b in group]
            want = sum(len(v) for v in views)
            got = 0
            while got < want:
                n = os.preadv(fd, _after(views, got), position + got)
                if n <= 0:
                    raise OSError(f"{path}: truncated while reading")
                got += n
            position += want
            for v in views:
                file_hash.update(v)
        if os.pread(fd, 1, before[2]):  # the file grew while it was read: let the loader decide
            raise OSError(f"{path}: changed while reading")
        if _identity(os.fstat(fd)) != before:
            raise OSError(f"{path}: changed while reading")
    prefix = common_prefix(header)
    digest = _tensors_digest(header, data, len(prefix or "")) if tensors_digest else None
    return Prefetched(path, header, metadata, data, file_hash.hexdigest(), digest, prefix, before)


def _groups(buffers: list[bytearray], most: int = 512):
    """Consecutive buffers, at most ``most`` (under the system's IOV_MAX) and about ``BLOCK``
    bytes at a time."""
    group: list[bytearray] = []
    size = 0
    for b in buffers:
        if group and (len(group) == most or size + len(b) > BLOCK):
            yield group
            group, size = [], 0
        group.append(b)
        size += len(b)
    if group:
        yield group


def _after(views: list[memoryview], skip: int) -> list[memoryview]:
    """The views from byte ``skip`` of their concatenation on (what a short read left to fill)."""
    out = []
    for v in views:
        if skip >= len(v):
            skip -= len(v)
            continue
        out.append(v[skip:])
        skip = 0
    return out


def _tensors_digest(header: dict[str, dict], data: list[bytearray], cut: int) -> str:
    """``inflate.sources.tensors_sha256`` of the tensors named without their first ``cut``
    characters, from their bytes."""
    digest = hashlib.sha256()
    raw = dict(zip(header, data))
    for name in sorted(header, key=lambda k: k[cut:]):
        info = header[name]
        digest.update(f"{name[cut:]}|{TORCH_DTYPE_NAMES[info['dtype']]}|{tuple(info['shape'])}|".encode())
        digest.update(raw[name])
    return digest.hexdigest()


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    raw = os.pread(fd, n, offset)
    if len(raw) != n:
        raise OSError("short read")
    return raw
