"""Atomic writes: a temporary file in the target folder, flushed, fsynced, then renamed.

An existing output is never replaced unless ``force``; an output that is one of the inputs is
refused; on any error (or interrupt) the temporary file is removed, so readers see the old file or
nothing, never a partial one.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch

from ..errors import Inflate3dError
from ..paths import FORMAT_BY_SUFFIX, FORMAT_CHOICES, check_output, output_format  # noqa: F401  (re-exported)

ST_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


COMMITTED: list[Path] = []  # outputs given their final name in this process, in order
_TMP_TAG = "inflate3d"


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool = False, inputs: Sequence[Path] = ()) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes ``path`` only if the block finishes without error.

    The block may read the file back through ``f.name`` (e.g. to verify it) before it is committed.
    The commit (rename, bookkeeping) and the cleanup run with SIGINT and SIGTERM held back, so an
    interrupt lands before the rename (nothing written, no temporary file) or after it (the file
    is complete and listed in ``COMMITTED``), never in between, and never stops a cleanup.
    """
    path = Path(path)
    check_output(path, force=force, inputs=inputs)
    remove_stale_temporaries(path.parent)
    tmp = None
    try:
        with signals_deferred():  # an interrupt inside mkstemp would leave a file nobody removes
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_TMP_TAG}-{os.getpid()}-", suffix=".tmp",
                                       dir=path.parent)
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        try:
            with open(tmp, "wb") as f:  # f.name is the temporary path: checks may read it back
                yield f
                f.flush()
                os.fsync(f.fileno())
        except RuntimeError as e:
            if isinstance(e.__context__, KeyboardInterrupt):  # torch's writer turns one into this
                raise e.__context__ from None
            if not _is_write_failure(e):
                raise
            raise Inflate3dError(f"{path}: could not be written ({_why_write_failed(Path(tmp), e)}); nothing "
                                 "was written") from None
        with signals_deferred():
            if force:
                os.replace(tmp, path)
            else:
                _commit_no_clobber(tmp, path)
            tmp = None
            COMMITTED.append(path)
            _fsync_dir(path.parent)
    except OSError as e:  # disk full, file-size limit, I/O error, a read-only folder
        raise Inflate3dError(f"{path}: could not be written ({e.strerror or e}); nothing was "
                             "written") from None
    finally:
        if tmp is not None:
            with signals_deferred(), contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _is_write_failure(e: RuntimeError) -> bool:
    """torch.save reports a failed write (disk full, file too large) as a RuntimeError."""
    msg = str(e)
    return any(m in msg for m in ("PytorchStreamWriter", "file write failed", "unexpected pos"))


def _why_write_failed(tmp: Path, e: RuntimeError) -> str:
    """torch's message says where its write stopped, not why: ask the file system."""
    import resource

    with contextlib.suppress(OSError, ValueError):
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and tmp.stat().st_size >= limit - 2**16:
            return "File too large"
        st = os.statvfs(tmp.parent)
        if st.f_bavail * st.f_frsize < 2**20:
            return "No space left on device"
    return str(e).splitlines()[0][:200]


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a few system calls: one that arrives meanwhile is
    recorded, and handed to the handler that was in place on the way out. (Python runs handlers
    in the main thread between bytecodes whichever thread the signal hit, so a recording
    handler is what holds them back; a thread's signal mask would not.)"""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread
        yield
        return
    caught: list[int] = []
    old = {s: signal.signal(s, lambda signum, _frame: caught.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            handler = old[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])  # the default action, now that it is back


_STALE = re.compile(rf"^\..+\.{_TMP_TAG}-(\d+)-[a-z0-9_]{{8}}\.tmp$")


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files that an earlier run killed outright (``kill -9``, a power cut)
    left in ``folder``: only names of our own pattern whose process is gone. Says so (a warning)."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _STALE.match(name)
        if m is None or _alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(folder / name)
            removed.append(name)
    if removed:
        import warnings

        shown = ", ".join(removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
        warnings.warn(f"{folder}: removed {len(removed)} temporary file(s) left by an interrupted "
                      f"earlier run: {shown}", stacklevel=3)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or an absurd pid): leave its file alone
    return True


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
                      tensors: Iterable[tuple[str, torch.Tensor]], metadata: Mapping[str, str], *,
                      after: Callable[[str, torch.Tensor, int, int], object] | None = None) -> None:
    """Stream tensors into ``f`` in ``specs`` order, one at a time (nothing is held twice).

    Every tensor must arrive with the declared name, shape and dtype, else the write aborts.
    ``after(name, tensor, position, nbytes)`` is called once each tensor's bytes are flushed to
    the file (``io.proof.write_proven`` reads them back from there while the next is written).
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
        position = f.tell() if after is not None else 0
        nbytes = f.write(tensor_bytes(t))
        if after is not None:
            f.flush()
            after(name, t, position, nbytes)
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
