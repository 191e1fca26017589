"""Atomic writes: a temporary file in the target folder, flushed, fsynced, then renamed.

An existing output is never replaced unless ``force``; an output that is one of the inputs is
refused; on any error (or interrupt) the temporary file is removed, so readers see the old file or
nothing, never a partial one.
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import Inflate3dError

ST_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


# What an output's extension says it is; ``--format`` may only agree (or name the format of a file
# whose extension says nothing).
FORMAT_BY_SUFFIX = {".safetensors": "safetensors", ".pth": "pth", ".pt": "pth", ".pyth": "pth", ".pkl": "pkl"}
FORMAT_CHOICES = ".safetensors, .pth/.pt/.pyth (torch) or .pkl (Caffe2 blobs)"


def output_format(path: Path, fmt: str | None) -> str:
    """The format to write ``path`` in: its extension's, which ``fmt`` (``--format``) must not
    contradict; an unknown extension needs ``fmt``."""
    suffix = Path(path).suffix.lower()
    by_suffix = FORMAT_BY_SUFFIX.get(suffix)
    if by_suffix and fmt and fmt != by_suffix:
        raise Inflate3dError(f"{path}: a {suffix} file is written as {by_suffix}, but --format {fmt} was "
                             f"given; change the extension or drop --format")
    if by_suffix is None and fmt is None:
        raise Inflate3dError(f"{path}: unknown extension {suffix or '(none)'!r}; use {FORMAT_CHOICES}, "
                             "or pass --format")
    return by_suffix or fmt


def check_output(path: Path, *, force: bool, inputs: Sequence[Path] = ()) -> None:
    for src in inputs:
        if src.exists() and path.exists() and os.path.samefile(src, path):
            raise Inflate3dError(f"{path}: is also an input; choose another output path")
    if path.exists() and not force:
        raise Inflate3dError(f"{path}: already exists; pass --force to overwrite it")
    if path.is_dir():
        raise Inflate3dError(f"{path}: is a directory; give a file name")
    if not path.parent.exists():
        raise Inflate3dError(f"{path.parent}: output folder does not exist; create it first")


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool = False, inputs: Sequence[Path] = ()) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block finishes without error.

    The block may read the file back through ``f.name`` (e.g. to verify it) before it is committed.
    """
    path = Path(path)
    check_output(path, force=force, inputs=inputs)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        try:
            with open(tmp, "wb") as f:  # f.name is the temporary path: checks may read it back
                yield f
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # disk full, file-size limit, I/O error
            raise Inflate3dError(f"{path}: could not be written ({e.strerror or e}); nothing was "
                                 "written") from None
        if force:
            os.replace(tmp, path)
        else:
            _commit_no_clobber(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _commit_no_clobber(tmp: str, path: Path) -> None:
    """Rename ``tmp`` to ``path`` unless ``path`` exists, atomically: a hard link fails on an
    existing name even when another writer races us. Filesystems without hard links fall back to
    check-then-rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise Inflate3dError(f"{path}: was created while writing; pass --force to overwrite it") from None
    except OSError:
        if path.exists():
            raise Inflate3dError(f"{path}: was created while writing; pass --force to overwrite it") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def safetensors_header(specs: Iterable[tuple[str, tuple[int, ...], torch.dtype]],
                       metadata: Mapping[str, str]) -> bytes:
    """The 8-byte length + JSON header for tensors laid out back to back in the given order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, shape, dtype in specs:
        nbytes = _numel(shape) * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": ST_DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def write_safetensors(f: IO[bytes], specs: Sequence[tuple[str, tuple[int, ...], torch.dtype]],
                      tensors: Iterable[tuple[str, torch.Tensor]], metadata: Mapping[str, str]) -> None:
    """Stream tensors into ``f`` in ``specs`` order, one at a time (nothing is held twice).

    Every tensor must arrive with the declared name, shape and dtype, else the write aborts.
    """
    f.write(safetensors_header(specs, metadata))
    it = iter(tensors)
    for name, shape, dtype in specs:
        got_name, t = next(it, (None, None))
        if t is None:
            raise Inflate3dError(f"internal error: no tensor produced for {name}", exit_code=1)
        if got_name != name or tuple(t.shape) != tuple(shape) or t.dtype != dtype:
            raise Inflate3dError(f"internal error: expected {name} {tuple(shape)} {dtype}, got "
                                 f"{got_name} {tuple(t.shape)} {t.dtype}", exit_code=1)
        f.write(tensor_bytes(t))
    if next(it, None) is not None:
        raise Inflate3dError("internal error: more tensors than declared", exit_code=1)


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's little-endian bytes, in a buffer that keeps its own memory alive.

    A strided view (a transposed kernel, a slice of a wider buffer) is copied to a contiguous
    tensor first; the returned view holds a reference to that copy (through numpy's base), so the
    bytes cannot be freed before they are written, for every dtype (bf16 included: it is viewed as
    raw bytes, never converted).
    """
    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def write_pth(f: IO[bytes], obj: Any) -> None:
    """``torch.save`` of ``obj`` with every tensor given its own compact storage: torch.save keeps
    a view's strides and writes its whole storage, so a slice of a wider buffer would carry the
    buffer's other bytes into the file."""
    torch.save(_owned(obj), f)


def _owned(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        compact = t.is_contiguous() and t.storage_offset() == 0 and \
            t.untyped_storage().nbytes() == t.numel() * t.element_size()
        return t if compact else t.clone(memory_format=torch.contiguous_format)
    if isinstance(obj, dict):
        return type(obj)((k, _owned(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_owned(v) for v in obj)
    return obj
