"""Atomic writes: a temporary file in the target folder, flushed, fsynced, then renamed.

An existing output is never replaced unless ``force``; an output that is one of the inputs is
refused; on any error (or interrupt) the temporary file is removed, so readers see the old file or
nothing, never a partial one.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import Inflate3dError
from ..paths import check_output  # noqa: F401  (re-exported: commands import it from here)

ST_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


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
    """The tensor's little-endian bytes without a copy when it is contiguous on the CPU."""
    t = t.detach().to("cpu").contiguous()
    nbytes = t.numel() * t.element_size()
    if nbytes == 0:
        return memoryview(b"")
    # A view on the tensor's own memory (no numpy needed); the caller writes it at once.
    return memoryview((ctypes.c_char * nbytes).from_address(t.data_ptr())).cast("B")


def write_pth(f: IO[bytes], obj: Any) -> None:
    torch.save(obj, f)
