"""What a checkpoint file holds, torch-free: the ``Checkpoint`` record, format sniffing, Hugging
Face folders, container unwrapping and the extent check, shared by the loader (``load``: tensors)
and the structure reader (``structure``: shapes only, for ``inspect``)."""
from __future__ import annotations

from collections.abc import Callable
from math import prod
from operator import mul
from pathlib import Path
from typing import Any

from ..errors import Inflate3dError
from ..paths import check_readable as _check_readable
from ..records import Record

CONTAINER_KEYS = ("state_dict", "model_state", "model")
PREFIXES = ("module.", "model.")  # DataParallel; PySlowFast's wrapper around pytorchvideo nets


class Checkpoint(Record):
    """Tensors by name in file order, with where they came from.

    ``format``: 'safetensors', 'torch-zip', 'torch-pickle' or 'caffe2-pickle'; ``tensors``: torch
    tensors, or ``TensorMeta`` records (inspect); ``container``: the key that held the weights;
    ``prefix``: the prefix stripped from every key; ``dropped``: non-weight entries left out;
    ``extras``: plain values beside the weights (epoch, cfg); ``config``: the training config the
    file carries (PySlowFast's ``cfg`` YAML); ``sha256``: the file's digest, on call
    (``load_checkpoint(digest=True)``); ``non_finite``: tensors holding NaN or Inf, where the
    loader screened them; ``tensors_sha256``: the tensors' digest, where the bytes were digested
    as read (prefetch)."""

    __slots__ = ("path", "format", "tensors", "container", "prefix", "metadata", "dropped", "extras", "config",
                 "sha256", "non_finite", "tensors_sha256")

    def __init__(self, path: Path, format: str, tensors: dict[str, Any], container: str | None = None,
                 prefix: str | None = None, metadata: dict[str, str] | None = None, dropped: list[str] | None = None,
                 extras: dict[str, Any] | None = None, config: str | None = None,
                 sha256: Callable[[], str] | None = None, non_finite: list[str] | None = None,
                 tensors_sha256: str | None = None) -> None:
        self.path, self.format, self.tensors, self.container, self.prefix = path, format, tensors, container, prefix
        self.metadata = {} if metadata is None else metadata
        self.dropped = [] if dropped is None else dropped
        self.extras = {} if extras is None else extras
        self.config, self.sha256, self.non_finite, self.tensors_sha256 = config, sha256, non_finite, tensors_sha256


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib  # OpenSSL's start-up is a cost inspect does not pay

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
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
    except RecursionError:  # [[[[...: 100,000 deep was an internal error
        raise Inflate3dError(f"{path / 'config.json'}: unreadable (JSON nested too deep)") from None
    if not isinstance(config, dict):  # its readers look names up in it
        raise Inflate3dError(f"{path / 'config.json'}: a JSON {type(config).__name__}, not an object; "
                             "a Hugging Face config.json maps names to values")
    return path / "model.safetensors", {"hf_config": json.dumps(config, sort_keys=True, separators=(",", ":"))}


def metadata_json(record: dict[str, str], key: str, origin: str) -> dict | None:
    """The JSON object a file's metadata entry ``key`` holds (``arch_overrides``, ``hf_config``), or
    None without one. An entry that is not a JSON object is an error naming the file: its readers
    look names up in it (an edited entry was an internal error)."""
    if key not in record:
        return None
    import json

    try:
        value = json.loads(record[key])
    except (TypeError, ValueError, RecursionError) as e:
        why = "nested too deep" if isinstance(e, RecursionError) else text(str(e).splitlines()[0], 200)
        raise Inflate3dError(f"{origin}: its metadata {key!r} is not valid JSON ({why}); the file was edited or is "
                             f"damaged: restore the entry or remove it") from None
    if not isinstance(value, dict):
        raise Inflate3dError(f"{origin}: its metadata {key!r} is a JSON {type(value).__name__}, not an object; the "
                             "file was edited or is damaged: restore the entry or remove it")
    return value


def text(value: Any, limit: int = 1 << 20) -> str:
    """A file's key or metadata value as text: never raises (a 5,000-digit int cannot be printed
    by ``str``), never longer than ``limit``, and never slower than ``limit`` steps (see
    ``_prints_longer``)."""
    if type(value) is str and len(value) <= limit:  # a name, as nearly every call has it
        return value
    if _prints_longer(value, limit):
        return f"<a {type(value).__name__} too large to print>"
    try:
        s = value if isinstance(value, str) else str(value)
    except (ValueError, RecursionError, MemoryError, TypeError):
        s = f"<unprintable {type(value).__name__}>"
    return s if len(s) <= limit else s[:limit] + f"... ({len(s) - limit} characters cut)"


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _prints_longer(value: Any, limit: int) -> bool:
    """Whether ``str(value)`` would print more than ``limit`` objects (each at least a character).
    A pickle can put one list twice into the next, 60 times over (memo GETs): 600 bytes whose
    ``str`` is 2**60 items long, which ``str`` would build for ever before any cut. Walked as
    ``repr`` walks (a container already being printed prints as ``[...]``), without recursion,
    and stopped at ``limit``."""
    if not isinstance(value, _CONTAINERS):
        return False
    todo: list = [(value, False)]
    printing: set[int] = set()
    seen = 0
    while todo:
        obj, done = todo.pop()
        if done:
            printing.discard(id(obj))
            continue
        seen += 1
        if seen > limit:
            return True
        if isinstance(obj, _CONTAINERS) and id(obj) not in printing:
            printing.add(id(obj))
            todo.append((obj, True))
            items = [x for kv in obj.items() for x in kv] if isinstance(obj, dict) else obj
            todo.extend((x, False) for x in items)
    return False


def metadata_text(meta: dict) -> dict[str, str]:
    return {text(k, 1000): text(v) for k, v in meta.items()}


_INT = frozenset((int,))


def only_ints(values) -> bool:
    """Whether every one of ``values`` is an int exactly (a bool is not: JSON's ``true`` is no size),
    checked in C: the structure readers ask it of every tensor's sizes."""
    return _INT.issuperset(map(type, values))


def beyond_int64(shape) -> bool:
    """Whether no tensor can have ``shape``: torch's sizes are int64, so a negative size, or sizes
    whose product (a 0 counted as 1) reaches 2**63, as [10**19, 0] (no values) does."""
    span = 1
    for n in shape:
        if n < 0:
            return True
        span *= max(n, 1)
    return span >= 2**63


def extent_error(path: Path, name: str, shape, stride, offset: int, have: int) -> str | None:
    """Why a tensor of ``shape``/``stride`` (of one length) at ``offset`` does not fit a storage of
    ``have`` values (or holds more values than it), else None: a (2**20, 2**20) view with strides
    (0, 0) of a one-value storage is refused before anything reads it. Sizes are torch's (int64): a negative
    size, or one of 10**19 beside a 0 (no values), is no tensor torch can make, and the structure
    reader, which builds none, took such a file on to fail in the lazy reader (an internal error).
    The numbers are printed with ``text``: one of 5,000 digits cannot be printed by ``str``."""
    numel = prod(shape)  # with no size below 1, the product is what beyond_int64 bounds
    if min(shape, default=1) < 1 and beyond_int64(shape) or numel >= 2**63 or not 0 <= offset < 2**63:
        return (f"{path}: tensor {text(name, 200)} has shape {text(tuple(shape), 200)} at offset {text(offset, 30)}, "
                "which no tensor can have; the file is corrupt or hostile")
    if numel == 0:
        return None
    end = offset + sum(map(mul, shape, stride)) - sum(stride)  # the last value's index: sum of (n - 1) * s
    if min(stride, default=0) < 0 or end >= have or numel > have:
        return (f"{path}: tensor {text(name, 200)} claims {numel:,} values (shape {tuple(shape)}, strides "
                f"{text(tuple(stride), 200)}) from a storage of {have:,}; the file is corrupt or hostile")
    return None


def unwrap(path: Path, fmt: str, obj: Any, is_tensor: Callable[[Any], bool], advice: str = "") -> Checkpoint:
    """The weights of a loaded object (a state dict, maybe inside a container), with the container's
    metadata, plain extras and training config. ``is_tensor`` tells weights from other values;
    ``advice`` ends the error for an object that is not a dict."""
    container = None
    dropped: list[str] = []
    outer = obj if isinstance(obj, dict) else {}
    if isinstance(obj, dict) and not (obj and all(is_tensor(v) for v in obj.values())):
        for key in CONTAINER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                container = key
                dropped = [k for k in obj if k != key]
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise Inflate3dError(f"{path}: holds a {type(obj).__name__}, not a state dict{advice}")
    tensors = {k: v for k, v in obj.items() if is_tensor(v)}
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


def common_prefix(names) -> str | None:
    """The wrapper prefix (``PREFIXES``) every name starts with, if any."""
    for prefix in PREFIXES:
        if names and all(k.startswith(prefix) for k in names):
            return prefix
    return None


def strip_prefix(ckpt: Checkpoint) -> None:
    prefix = common_prefix(ckpt.tensors)
    if prefix is not None:
        ckpt.tensors = {k[len(prefix):]: v for k, v in ckpt.tensors.items()}
        ckpt.prefix = prefix
