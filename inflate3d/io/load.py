"""Load a checkpoint safely: safetensors, or ``torch.load(weights_only=True)``; never run code.

Formats are told apart by their first bytes, not their file names. A pickle that needs code to
unpickle is refused with the globals it asks for; ``trust_pickle=True`` is the explicit way past.
Containers (``state_dict``, ``model_state``, ``model``) and ``module.`` prefixes are unwrapped.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import Inflate3dError
from .pickle_scan import prescan as _prescan
from .checkpoint import (Checkpoint, extent_error, hf_folder, metadata_text, sha256_file,  # noqa: F401 (re-exported)
                         sniff_format, strip_prefix, text, unwrap)


def sha256_in_background(path: Path):
    """Start hashing ``path`` on a thread (hashlib releases the GIL); call the result to wait."""
    return in_background(sha256_file, path)


def in_background(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """Start ``fn(*args)`` on a thread; call the result to wait for its value (or its exception)."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future.result


class BackgroundSha256:
    """The sha256 of buffers handed over in order (``update``), computed on a thread while the
    caller goes on (hashlib releases the GIL on large buffers). ``hexdigest()`` waits. A buffer
    must not change after it is handed over."""

    def __init__(self) -> None:
        import hashlib
        import queue
        import threading

        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._hash = hashlib.sha256()
        self._error: BaseException | None = None
        self._digest: str | None = None
        self._thread = threading.Thread(target=self._run, name="inflate3d-sha256", daemon=True)
        self._thread.start()

    def update(self, buf) -> None:
        self._queue.put(buf)

    def _run(self) -> None:
        while (buf := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._hash.update(buf)
                except BaseException as e:  # noqa: BLE001 - handed to hexdigest's caller
                    self._error = e

    def hexdigest(self) -> str:
        if self._digest is None:
            self._queue.put(None)
            self._thread.join()
            if self._error is not None:
                raise self._error
            self._digest = self._hash.hexdigest()
        return self._digest


def load_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False, digest: bool = False,
                    prefetched=None) -> Checkpoint:
    """``digest=True``: also the file's sha256 (``Checkpoint.sha256``, a call that waits for it),
    hashed on a thread from the very bytes read (a safetensors file is read once), or beside the
    load (torch's formats, which torch reads itself). ``prefetched``: an ``io.prefetch.Prefetch``
    of this file, started before torch was imported; its bytes are used when it read them."""
    path, record = hf_folder(Path(path))
    got = prefetched.take() if prefetched is not None else None
    if got is not None and got.path != path:
        got = None
    fmt = "safetensors" if got is not None else sniff_format(path)
    sha256 = None
    if fmt == "safetensors":
        tensors, metadata, sha256 = (_prefetched_tensors(got), got.metadata, lambda: got.sha256) if got \
            else _load_safetensors(path, digest=digest)
        ckpt = Checkpoint(path, fmt, tensors, container="huggingface folder" if record else None,
                          metadata={**metadata, **record}, tensors_sha256=got.tensors_sha256 if got else None)
    elif fmt == "torch-pickle" and (blobs := _caffe2_blobs(path, trust_pickle)) is not None:
        ckpt = Checkpoint(path, "caffe2-pickle", blobs[0], container="blobs", metadata=blobs[1])
    else:
        sha256 = sha256_in_background(path) if digest else None
        obj = _torch_load(path, zipped=fmt == "torch-zip", trust_pickle=trust_pickle)
        advice = "; save model.state_dict() instead of the model object" if isinstance(obj, torch.nn.Module) else ""
        ckpt = unwrap(path, fmt, obj, lambda v: isinstance(v, torch.Tensor), advice)
        check_extents(path, ckpt.tensors)
    if digest:
        ckpt.sha256 = sha256 or sha256_in_background(path)
    strip_prefix(ckpt)
    bad = ckpt.non_finite = non_finite(ckpt.tensors)
    if bad:
        warnings.warn(f"{path}: NaN or Inf values in {', '.join(bad[:5])}"
                      f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}", stacklevel=2)
    return ckpt


def _caffe2_blobs(path: Path, trust_pickle: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """A Caffe2 pickle's blobs, or None when the file is a torch legacy pickle (whose first object
    is torch's magic number). Only numpy arrays and containers can be built while looking."""
    from . import caffe2

    _prescan(path, pickles=1)
    try:
        first = caffe2.first_object(path)
    except Inflate3dError:
        raise
    except pickle.UnpicklingError as e:
        found = _GLOBAL_RE.findall(str(e))
        if found and trust_pickle:
            return None  # the user vouches for it: torch.load(weights_only=False) decides
        if found:  # name every global of the first pickle the arrays-only unpickler would refuse
            from .pickle_scan import scan_file

            allowed = {f"{m}.{n}" for m, n in caffe2.ALLOWED}
            every = [g for g in dict.fromkeys(scan_file(path, pickles=1).globals) if g not in allowed]
            raise _refused(path, every or found) from None
        raise Inflate3dError(f"{path}: corrupt pickle ({str(e)[:200]})") from None
    except Exception as e:  # noqa: BLE001 - the arrays-only unpickler runs no code: a bad file
        raise Inflate3dError(f"{path}: corrupt pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(first, int):
        return None
    meta = first.get("inflate3d") if isinstance(first, dict) else None
    if meta is not None and not isinstance(meta, dict):
        raise Inflate3dError(f"{path}: its 'inflate3d' metadata is a {type(meta).__name__}, not a mapping")
    return caffe2.read_blobs(path, first), metadata_text(meta or {})


def check_extents(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor must fit its storage, and hold no more values than its storage."""
    for name, t in tensors.items():
        if t.layout != torch.strided or t.device.type != "cpu":
            raise Inflate3dError(f"{path}: tensor {text(name, 200)} is {t.layout} on {t.device}; "
                                 "only dense CPU tensors are read")
        have = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        if why := extent_error(path, name, t.shape, t.stride(), t.storage_offset(), have):
            raise Inflate3dError(why)


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the tensors that hold a NaN or an Inf."""
    return [name for name, t in tensors.items() if not _finite(t)]


def _finite(t: torch.Tensor, chunk: int = 1 << 22) -> bool:
    """NaN and Inf propagate through a sum, so one reduction (no copy) screens a chunk; only a
    non-finite sum, which an overflow can also cause, is looked at element by element. Chunks
    keep a long screen interruptible (a signal is handled between them)."""
    if not t.is_floating_point():
        return True
    flat = t.reshape(-1)
    for i in range(0, flat.numel(), chunk):
        part = flat[i:i + chunk]
        if not (bool(torch.isfinite(part.sum())) or bool(torch.isfinite(part).all())):
            return False
    return True


def _prefetched_tensors(got) -> dict[str, torch.Tensor]:
    """The tensors of a prefetched file: views of its one data buffer (no copy); a tensor whose
    offset does not suit its dtype gets memory of its own."""
    from .lazy import ST_TORCH, typed

    base = torch.frombuffer(got.data, dtype=torch.uint8) if len(got.data) else torch.empty(0, dtype=torch.uint8)
    return {key: typed(base[info["data_offsets"][0]:info["data_offsets"][1]], ST_TORCH[info["dtype"]], info["shape"])
            for key, info in got.header.items()}


def _load_safetensors(path: Path, *, digest: bool = False):
    """(every tensor, metadata, the file's sha256 as a call or None), from one open file whose
    header was validated (``safetensors_header``, the validation the lazy reader uses too: the two
    never disagree about a file). With ``digest``, the bytes read are hashed on a thread as they
    arrive: the digest is of the bytes loaded, and the file is read once."""
    from .lazy import SafetensorsFile

    hasher = BackgroundSha256() if digest else None
    with SafetensorsFile(path) as f:
        tensors = f.read_all(hasher.update if hasher else None)
        return tensors, f.metadata, hasher.hexdigest if hasher else None


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


_OPERAND_RE = re.compile(r"Unsupported operand (\d+)")


def _unread_opcode(path: Path, code: int) -> Inflate3dError:
    """torch's weights-only unpickler reads the opcodes torch.save writes, not every opcode."""
    import pickletools

    name = next((op.name for op in pickletools.opcodes if ord(op.code) == code), f"byte {code}")
    return Inflate3dError(f"{path}: refused: torch's weights-only loader does not read the pickle opcode {name}, "
                          "which torch.save never writes (no global is called: the file was made otherwise, or "
                          "is damaged). Nothing was run. If you trust this file, pass --trust-pickle")


def _refused(path: Path, globals_: list[str]) -> Inflate3dError:
    what = ", ".join(globals_) if globals_ else "code"
    return Inflate3dError(f"{path}: refused: unpickling would call {what}. Nothing was run. If you "
                          "trust this file, pass --trust-pickle")


def _torch_load(path: Path, *, zipped: bool, trust_pickle: bool) -> Any:
    if zipped:
        from .torch_zip import zip_too_large

        try:
            with zipfile.ZipFile(path) as z:
                too_large = zip_too_large(z.infolist(), path.stat().st_size)
                bad = None if too_large else z.testzip()
        except Exception as e:  # noqa: BLE001 - zipfile on damaged bytes: BadZipFile, but also
            # NotImplementedError (bogus compression method), UnicodeDecodeError (member names)...
            raise Inflate3dError(f"{path}: corrupt torch zip checkpoint ({type(e).__name__}: {str(e)[:200]}); "
                                 "the file is truncated or damaged") from None
        if too_large:
            raise Inflate3dError(f"{path}: refused: {too_large} (torch stores its members uncompressed)")
        if bad is not None:
            raise Inflate3dError(f"{path}: corrupt torch zip checkpoint (bad member {text(bad, 200)})")
    _prescan(path)
    budget = 2 * path.stat().st_size + MEMORY_SLACK
    try:
        with memory_bounded(budget):
            return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=False)
    except _OverBudget:
        raise Inflate3dError(f"{path}: refused: loading it would take more than {budget:,} bytes of memory, "
                             f"which a {path.stat().st_size:,}-byte file cannot hold; the file is corrupt or "
                             "hostile") from None
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = _GLOBAL_RE.findall(msg)
        if "weights_only" in msg or found:
            from .pickle_scan import disallowed, pickle_globals

            globals_ = disallowed(pickle_globals(path)) or found
            if not globals_ and (op := _OPERAND_RE.search(msg)):  # no global: an opcode torch.save never writes
                raise _unread_opcode(path, int(op[1])) from None
            raise _refused(path, globals_) from None
        raise Inflate3dError(f"{path}: corrupt pickle checkpoint ({msg.splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001 - see below
        if _is_out_of_memory(e):
            raise Inflate3dError(f"{path}: refused: loading it would take more than {budget:,} bytes of "
                                 f"memory, which a {path.stat().st_size:,}-byte file cannot hold; the file "
                                 "is corrupt or hostile") from None
        # The weights_only unpickler runs no code from the file, so whatever it raises on these
        # bytes (IndexError, KeyError, struct.error, MemoryError, ...: fuzzing found them all)
        # means one thing: the file is corrupt.
        first = str(e).splitlines()[0][:200] if str(e) else ""
        name = type(e).__name__ if type(e).__name__ != "error" else f"{type(e).__module__}.error"
        raise Inflate3dError(f"{path}: unreadable torch checkpoint ({name}: {first})") from None


MEMORY_SLACK = 512 * 2**20


class _OverBudget(Exception):
    pass


def _is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or "can't allocate memory" in str(e) or "std::bad_alloc" in str(e)


@contextlib.contextmanager
def memory_bounded(nbytes: int) -> Iterator[None]:
    """Let the block allocate at most ``nbytes`` more memory (RLIMIT_DATA, lowered and restored):
    torch's readers size their buffers from numbers in the file (a legacy file's storage sizes)
    before reading it, so a few flipped bytes asked for gigabytes (found by fuzzing). An
    allocation beyond the bound fails at once instead of exhausting the machine."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        with open("/proc/self/status") as status:
            used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))
    except (ImportError, OSError, StopIteration, ValueError):  # not Linux: no bound
        yield
        return
    limit = used + nbytes
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    except Exception as e:
        if _is_out_of_memory(e):
            raise _OverBudget() from None
        raise
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


