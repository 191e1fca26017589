"""Proof of a written file from its bytes on disk: reopen it, read every tensor back and compare it
bit for bit (and its name, order, shape, dtype) with what was meant to be written.

Commands write to a temporary file, call ``prove_file`` on it and only then rename it: a writer
that loses bytes (a freed buffer, a strided view written as if contiguous, a disk that lies) fails
here, with exit 1, and nothing is left behind.
"""
from __future__ import annotations

import math
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

    written = _reopened(TensorFile, path, origin, metadata)
    compare_written(written, expected, origin=origin, keep=keep)
    return written


def _reopened(reader, path: Path, origin: str, metadata: Mapping[str, str] | None):
    """``reader(path)`` (a failure to open it is the proof's failure); ``metadata``, when given,
    must be what the file records."""
    try:
        written = reader(path)
    except Inflate3dError as e:
        raise _unreadable(origin, e) from None
    if metadata is not None and dict(written.metadata) != {str(k): str(v) for k, v in metadata.items()}:
        raise Inflate3dError(f"{origin}: the metadata read back from the written file differs from "
                             "what was written; nothing was written", exit_code=CHECK_FAILED)
    return written


def _unreadable(origin: str, why) -> Inflate3dError:
    return Inflate3dError(f"{origin}: the written file cannot be read back ({why}); nothing was written",
                          exit_code=CHECK_FAILED)


def write_proven(f, specs, tensors: Iterable[tuple[str, torch.Tensor]], metadata: Mapping[str, str], *,
                 origin: str, keep: dict[str, torch.Tensor] | None = None):
    """``io.save.write_safetensors`` into ``f``, proven as it goes: once a tensor's bytes are
    flushed, a thread reads them back from the file and compares them bit for bit with that
    tensor, while the next is computed and written; at the end the header is read back and
    validated, and the names, order, shapes, dtypes, positions and metadata it holds must be
    what was written. The same proof as ``prove_file``, without computing or reading the tensors
    a second time. Returns the file, opened; ``keep`` as in ``prove_file``."""
    from .lazy import SafetensorsFile
    from .save import write_safetensors

    path = Path(f.name)
    sizes = [math.prod(shape) * dtype.itemsize for _, shape, dtype in specs]
    check = _ReadBack(path, origin, keep, sizes)
    try:
        write_safetensors(f, specs, tensors, metadata, after=check.written)
        f.flush()  # the header too, when there is no tensor to flush it
    finally:
        names, placed, differ, error = check.finish()
    if error is not None:
        raise _unreadable(origin, error)
    written = _reopened(SafetensorsFile, path, origin, metadata)
    keys = list(written.header)
    _check_names(origin, names, keys)
    from .lazy import ST_TORCH

    moved = [k for k, (position, shape, dtype) in placed.items()
             if (written.header[k]["data_offsets"][0] + written.data_start != position
                 or tuple(written.header[k]["shape"]) != shape or ST_TORCH[written.header[k]["dtype"]] != dtype)]
    _check_same(origin, list(dict.fromkeys(differ + moved)))
    return written


class _ReadBack:
    """The thread of ``write_proven``. The tensors waiting for it are held to ``budget`` bytes
    (one tensor at least), so a slow disk cannot make the writer's memory grow. What it reads goes
    into one buffer made once (``io.arena``): the largest tensor's size, reused; with ``keep``, the
    whole data section, whose views are kept."""

    def __init__(self, path: Path, origin: str, keep: dict | None, sizes: list[int],
                 budget: int = 64 << 20) -> None:
        import queue
        import threading

        self.path, self.origin, self.keep, self.budget = path, origin, keep, budget
        self.names: list[str] = []
        self.placed: dict[str, tuple[int, tuple[int, ...], torch.dtype]] = {}
        self.differ: list[str] = []
        self.error: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._held = 0
        self._room = threading.Condition()
        self._file = open(path, "rb")  # noqa: SIM115 - closed by finish()
        from .arena import arena

        size = sum(sizes) if keep is not None else max(sizes, default=0)
        self._buf = torch.frombuffer(arena(size), dtype=torch.uint8) if size else torch.empty(0, dtype=torch.uint8)
        self._start: int | None = None  # the data section's position in the file: the first tensor's
        self._thread = threading.Thread(target=self._run, name="inflate3d-read-back", daemon=True)
        self._thread.start()

    def written(self, name: str, t: torch.Tensor, position: int, nbytes: int) -> None:
        if self._start is None:
            self._start = position
        self.names.append(name)
        self.placed[name] = (position, tuple(t.shape), t.dtype)
        with self._room:
            self._room.wait_for(lambda: self._held == 0 or self._held + nbytes <= self.budget)
            self._held += nbytes
        self._queue.put((name, t, position, nbytes))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            name, t, position, nbytes = item
            try:
                if self.error is None and not self._same(name, t, position, nbytes):
                    self.differ.append(name)
            except Exception as e:  # noqa: BLE001 - reported by finish(), in the proof's words
                self.error = f"{type(e).__name__}: {e}"
            finally:
                del t
                with self._room:
                    self._held -= nbytes
                    self._room.notify()

    def _same(self, name: str, t: torch.Tensor, position: int, nbytes: int) -> bool:
        from .lazy import _pread_into, typed

        at = position - self._start if self.keep is not None else 0
        if at < 0 or at + nbytes > self._buf.numel():
            return False  # not where the tensors before it say: not what was meant
        raw = self._buf[at:at + nbytes]
        _pread_into(self._file, self.path, raw, position, name)
        expected = t.detach().cpu()
        got = typed(raw, expected.dtype, expected.shape)
        if self.keep is not None:
            self.keep[name] = got
        return bit_equal(got, expected)

    def finish(self):
        """Wait for the thread; (names written, their positions, those that differ, an error)."""
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        return self.names, self.placed, self.differ, self.error


def _check_names(origin: str, names: list[str], keys: list[str]) -> None:
    if names != keys:
        missing = [k for k in names if k not in keys]
        extra = [k for k in keys if k not in names]
        what = f"missing {', '.join(missing[:3])}" if missing else \
            f"unexpected {', '.join(extra[:3])}" if extra else "tensors in another order"
        raise Inflate3dError(f"{origin}: the written file does not hold the tensors meant for it ({what}); "
                             "nothing was written", exit_code=CHECK_FAILED)


def _check_same(origin: str, differ: list[str]) -> None:
    if differ:
        raise Inflate3dError(f"{origin}: {len(differ)} tensors read back from the written file differ "
                             f"from what was written ({', '.join(differ[:3])}); nothing was written",
                             exit_code=CHECK_FAILED)


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
            raise _unreadable(origin, e) from None
        if name in present and not same:
            differ.append(name)
    _check_names(origin, names, keys)
    _check_same(origin, differ)
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
