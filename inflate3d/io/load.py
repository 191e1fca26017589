"""Load a checkpoint safely: safetensors, or ``torch.load(weights_only=True)``; never run code.

Formats are told apart by their first bytes, not their file names. A pickle that needs code to
unpickle is refused with the globals it asks for; ``trust_pickle=True`` is the explicit way past.
Containers (``state_dict``, ``model_state``, ``model``) and ``module.`` prefixes are unwrapped.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..errors import Inflate3dError
from ..paths import check_readable as _check_readable

CONTAINER_KEYS = ("state_dict", "model_state", "model")
PREFIXES = ("module.", "model.")  # DataParallel; PySlowFast's wrapper around pytorchvideo nets


@dataclass
class Checkpoint:
    """Tensors by name in file order, with where they came from."""

    path: Path
    format: str  # 'safetensors' | 'torch-zip' | 'torch-pickle' | 'caffe2-pickle'
    tensors: dict[str, torch.Tensor]
    container: str | None = None  # the key that held the weights, if any
    prefix: str | None = None  # the prefix stripped from every key, if any
    metadata: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # non-weight entries left out
    extras: dict[str, Any] = field(default_factory=dict)  # plain values beside the weights (epoch, cfg)
    config: str | None = None  # the training config the file carries (PySlowFast's ``cfg`` YAML)
    sha256: Callable[[], str] | None = None  # load_checkpoint(digest=True): the file's sha256, on call




def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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


def sniff_format(path: Path) -> str:
    """'safetensors', 'torch-zip' or 'torch-pickle', from the file's first bytes."""
    _check_readable(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise Inflate3dError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(head) == 0:
        raise Inflate3dError(f"{path}: the file is empty; point to a checkpoint file")
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    # safetensors before pickle: its header length's first byte may well be 0x80
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size:
        return "safetensors"
    if head[:1] == b"\x80":
        return "torch-pickle"
    raise Inflate3dError(f"{path}: not a safetensors, torch zip or pickle checkpoint "
                         f"(first bytes {head[:8]!r})")


def hf_folder(path: Path) -> tuple[Path, dict[str, str]]:
    """A Hugging Face folder (config.json + model.safetensors) -> (its weights file, {'hf_config':
    the config as compact JSON}); any other path -> (path, {})."""
    if not (path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file()):
        return path, {}
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise Inflate3dError(f"{path / 'config.json'}: unreadable ({e})") from None
    return path / "model.safetensors", {"hf_config": json.dumps(config, sort_keys=True, separators=(",", ":"))}


def load_checkpoint(path: str | os.PathLike, *, trust_pickle: bool = False, digest: bool = False) -> Checkpoint:
    """``digest=True``: also the file's sha256 (``Checkpoint.sha256``, a call that waits for it),
    hashed on a thread from the very bytes read (a safetensors file is read once), or beside the
    load (torch's formats, which torch reads itself)."""
    path, record = hf_folder(Path(path))
    fmt = sniff_format(path)
    sha256 = None
    if fmt == "safetensors":
        tensors, metadata, sha256 = _load_safetensors(path, digest=digest)
        ckpt = Checkpoint(path, fmt, tensors, container="huggingface folder" if record else None,
                          metadata={**metadata, **record})
    elif fmt == "torch-pickle" and (blobs := _caffe2_blobs(path, trust_pickle)) is not None:
        ckpt = Checkpoint(path, "caffe2-pickle", blobs[0], container="blobs", metadata=blobs[1])
    else:
        sha256 = sha256_in_background(path) if digest else None
        obj = _torch_load(path, zipped=fmt == "torch-zip", trust_pickle=trust_pickle)
        ckpt = _unwrap(path, fmt, obj)
        check_extents(path, ckpt.tensors)
    if digest:
        ckpt.sha256 = sha256 or sha256_in_background(path)
    _strip_prefix(ckpt)
    bad = [name for name, t in ckpt.tensors.items() if not _finite(t)]
    if bad:
        warnings.warn(f"{path}: NaN or Inf values in {', '.join(bad[:5])}"
                      f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}", stacklevel=2)
    return ckpt


def _prescan(path: Path, pickles: int = 4) -> None:
    """Before any unpickler runs, trusted file or not: the opcodes must be intact and nest at most
    ``MAX_DEPTH`` deep (deeper can crash CPython). Which globals are allowed is the unpickler's
    call; a refusal then names every global the scan saw."""
    from .pickle_scan import MAX_DEPTH, scan_file

    try:
        scan = scan_file(path, pickles=pickles)
    except Exception as e:  # noqa: BLE001 - reading opcodes runs nothing: a damaged file
        raise Inflate3dError(f"{path}: corrupt pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if scan.depth > MAX_DEPTH:
        raise Inflate3dError(f"{path}: refused: objects nested more than {MAX_DEPTH} deep (unpickling "
                             "them could crash Python); the file is corrupt or hostile. Nothing was run")
    if scan.damage:
        raise Inflate3dError(f"{path}: corrupt pickle ({scan.damage}); the file is truncated or damaged")


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


def text(value: Any, limit: int = 1 << 20) -> str:
    """A file's key or metadata value as text: never raises (a 5,000-digit int cannot be printed
    by ``str``), never longer than ``limit``."""
    try:
        s = value if isinstance(value, str) else str(value)
    except (ValueError, RecursionError, MemoryError, TypeError):
        s = f"<unprintable {type(value).__name__}>"
    return s if len(s) <= limit else s[:limit] + f"... ({len(s) - limit} characters cut)"


def metadata_text(meta: dict) -> dict[str, str]:
    return {text(k, 1000): text(v) for k, v in meta.items()}


def check_extents(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor must fit its storage, and hold no more values than its storage: a (2**20, 2**20)
    view with strides (0, 0) of a one-value storage is refused before anything reads it."""
    for name, t in tensors.items():
        if t.layout != torch.strided or t.device.type != "cpu":
            raise Inflate3dError(f"{path}: tensor {text(name, 200)} is {t.layout} on {t.device}; "
                                 "only dense CPU tensors are read")
        numel = t.numel()
        if numel == 0:
            continue
        have = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        end = t.storage_offset() + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))
        if any(s < 0 for s in t.stride()) or t.storage_offset() < 0 or end >= have or numel > have:
            raise Inflate3dError(f"{path}: tensor {text(name, 200)} claims {numel:,} values (shape "
                                 f"{tuple(t.shape)}, strides {t.stride()}) from a storage of {have:,}; "
                                 "the file is corrupt or hostile")


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


def _refused(path: Path, globals_: list[str]) -> Inflate3dError:
    what = ", ".join(globals_) if globals_ else "code"
    return Inflate3dError(f"{path}: refused: unpickling would call {what}. Nothing was run. If you "
                          "trust this file, pass --trust-pickle")


def _torch_load(path: Path, *, zipped: bool, trust_pickle: bool) -> Any:
    if zipped:
        from .pickle_scan import zip_too_large

        try:
            with zipfile.ZipFile(path) as z:
                too_large = zip_too_large(z, path.stat().st_size)
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

            raise _refused(path, disallowed(pickle_globals(path)) or found) from None
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
        used = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmData:"))
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


def _unwrap(path: Path, fmt: str, obj: Any) -> Checkpoint:
    container = None
    dropped: list[str] = []
    outer = obj if isinstance(obj, dict) else {}
    if isinstance(obj, dict) and not _is_tensor_dict(obj):
        for key in CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                container = key
                dropped = [k for k in obj if k != key]
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        advice = ("; save model.state_dict() instead of the model object" if isinstance(obj, torch.nn.Module)
                  else "")
        raise Inflate3dError(f"{path}: holds a {type(obj).__name__}, not a state dict{advice}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    non_tensors = [k for k in obj if k not in tensors]
    if not tensors:
        raise Inflate3dError(f"{path}: no tensors found (keys: {', '.join(text(k, 200) for k in list(obj)[:8])})")
    if non_tensors:
        raise Inflate3dError(f"{path}: entries that are not tensors where weights are expected: "
                             f"{', '.join(text(k, 200) for k in non_tensors[:8])}")
    metadata = {}
    for key in ("meta", "inflate3d"):  # mmaction2's {'state_dict', 'meta'}; inflate3d's record elsewhere
        if container and isinstance(outer.get(key), dict):
            metadata = metadata_text(outer[key])
            break
    extras = {k: v for k, v in outer.items() if container and k in dropped
              and isinstance(v, (int, float, str)) and not isinstance(v, bool)
              and not (isinstance(v, int) and abs(v) >= 2**63)}  # a 5,000-digit int cannot even be printed
    config = outer.get("cfg") if container and isinstance(outer.get("cfg"), str) else None
    return Checkpoint(path, fmt, {text(k, 10_000): v for k, v in tensors.items()}, container=container,
                      metadata=metadata, dropped=dropped, extras=extras, config=config)


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefix(ckpt: Checkpoint) -> None:
    for prefix in PREFIXES:
        if ckpt.tensors and all(k.startswith(prefix) for k in ckpt.tensors):
            ckpt.tensors = {k[len(prefix):]: v for k, v in ckpt.tensors.items()}
            ckpt.prefix = prefix
            return
