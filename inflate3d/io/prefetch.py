"""Read a safetensors checkpoint on a thread while ``import torch`` runs.

Importing torch takes one core about 1.5 s here, and reading a source, hashing its file and
digesting its tensors needs no torch: a command starts ``Prefetch(path)`` before its torch import
and ``load_checkpoint(..., prefetched=...)`` picks the bytes up after it. The thread validates the
header with the loader's own parser and does nothing else the loader would not: any problem (not
safetensors, a bad header, a short read, the file replaced meanwhile) leaves ``take()`` empty and
the loader reads the file itself, with its own errors. Reads and hashes release the GIL; the data
section is read into one buffer (``io.arena``: huge pages, so its page faults do not slow the
import's own) 16 MB at a time, since each return to Python waits for
the importing thread to let go of the GIL. The tensors are views of that buffer: writers give
every tensor compact storage of its own (``io.save``), so none carries the others' bytes.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .arena import arena, fill
from .checkpoint import common_prefix, sniff_format
from .safetensors_header import parse_header

BLOCK = 16 << 20  # bytes per read and hash update: few returns to Python

# the spelling of ``str(torch.<dtype>)`` for each safetensors dtype (the tensors' digest hashes it)
TORCH_DTYPE_NAMES = {"F64": "torch.float64", "F32": "torch.float32", "F16": "torch.float16",
                     "BF16": "torch.bfloat16", "I64": "torch.int64", "I32": "torch.int32",
                     "I16": "torch.int16", "I8": "torch.int8", "U8": "torch.uint8", "BOOL": "torch.bool"}


@dataclass
class Prefetched:
    """A safetensors file read whole: its validated header (file order), metadata, the data
    section (one buffer; the header's offsets count from its start), the file's sha256 and the
    digest ``inflate.sources.tensors_sha256`` gives for its tensors under their names without
    ``prefix`` (None where not asked for)."""

    path: Path
    header: dict[str, dict]
    metadata: dict[str, str]
    data: bytearray | mmap.mmap
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
        data = arena(before[2] - start)
        view = memoryview(data)
        for at in range(0, len(view), BLOCK):
            block = view[at:at + BLOCK]
            if not fill(fd, block, start + at):
                raise OSError(f"{path}: truncated while reading")
            file_hash.update(block)
        if os.pread(fd, 1, before[2]):  # the file grew while it was read: let the loader decide
            raise OSError(f"{path}: changed while reading")
        if _identity(os.fstat(fd)) != before:
            raise OSError(f"{path}: changed while reading")
    prefix = common_prefix(header)
    digest = _tensors_digest(header, view, len(prefix or "")) if tensors_digest else None
    return Prefetched(path, header, metadata, data, file_hash.hexdigest(), digest, prefix, before)


def _tensors_digest(header: dict[str, dict], view: memoryview, cut: int) -> str:
    """``inflate.sources.tensors_sha256`` of the tensors named without their first ``cut``
    characters, from their bytes in the data section."""
    digest = hashlib.sha256()
    for name in sorted(header, key=lambda k: k[cut:]):
        info = header[name]
        begin, end = info["data_offsets"]
        digest.update(f"{name[cut:]}|{TORCH_DTYPE_NAMES[info['dtype']]}|{tuple(info['shape'])}|".encode())
        digest.update(view[begin:end])
    return digest.hexdigest()


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    raw = os.pread(fd, n, offset)
    if len(raw) != n:
        raise OSError("short read")
    return raw
