"""A torch zip checkpoint's structure without torch: ``data.pkl`` alone, through an unpickler that
builds shape records where torch would build tensors, resolves no other global, and hashes nothing
but strings and ints (so depth cannot crash it). The storages are never read: only their sizes in
the zip's directory are checked against every tensor's extent. ``Layout`` tells a lazy reader
(``io.lazy``) where each tensor's bytes lie.
"""
from __future__ import annotations

import io
import os
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..errors import Inflate3dError
from . import pickle_runs as runs
from .checkpoint import Checkpoint, extent_error, only_ints, text, unwrap
from .structure import ITEMSIZE, NeedsTorch, TensorMeta

_unpack_double = struct.Struct(">d").unpack_from
_unpack_uint32 = struct.Struct("<I").unpack_from
_unpack_int32 = struct.Struct("<i").unpack_from

# torch's typed storages, as torch.save names them, and the dtype each holds
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
             "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
             "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128"}


class _Storage:
    __slots__ = ("dtype", "key", "numel")

    def __init__(self, dtype: str, key: str, numel: int) -> None:
        self.dtype, self.key, self.numel = dtype, key, numel


class _StorageType:
    __slots__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


class _View:
    """A tensor as the pickle describes it, checked against its storage after unpickling."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


# More dimensions than any checkpoint has (torch sets no limit): beyond it, torch's loader and its
# scan decide. Checking a tensor costs its dimensions, and one size tuple in the memo can serve
# every tensor: 20,000 tensors of one 20,000-long size (a 1.3 MB file) took minutes.
MAX_DIMS = 64


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > MAX_DIMS or not only_ints(value):
        raise NeedsTorch(f"{what} is not a tuple of at most {MAX_DIMS} ints")
    return value


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, _Storage) or type(offset) is not int:
        raise NeedsTorch("a tensor rebuilt from something other than a storage")
    shape, stride = _ints(size, "a tensor's size"), _ints(stride, "a tensor's stride")
    if len(shape) != len(stride):
        raise NeedsTorch("a tensor's size and stride differ in length")
    return _View(storage, offset, shape, stride)


def _ordered_dict(*args):
    """``OrderedDict(*args)`` as the file asks for it. torch writes ``OrderedDict()`` and fills it
    with SETITEMS (whose keys are checked); pairs given here would be hashed as they are (a key
    nested 200,000 deep crashed CPython), so only a mapping this reader built is taken."""
    if not args:
        return OrderedDict()
    if len(args) == 1 and isinstance(args[0], dict):
        return OrderedDict(args[0])
    raise NeedsTorch("an OrderedDict built from pairs")


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, _View):
        raise NeedsTorch("a parameter of something other than a tensor")
    return data


def _find_class(module: str, name: str) -> Any:
    """The few globals a state dict uses, each resolved to a local stand-in."""
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
        return _rebuild_tensor
    if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
        return _rebuild_parameter
    if module == "torch" and name in _STORAGES:
        return _StorageType(_STORAGES[name])
    if (module, name) == ("collections", "OrderedDict"):
        return _ordered_dict
    raise NeedsTorch(f"global {module}.{name}")  # torch's loader decides (and names it if refused)


def _persistent_load(pid: Any) -> _Storage:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and type(pid[4]) is int
            and pid[4] >= 0):  # torch refuses a negative size: its loader words it
        raise NeedsTorch("a storage reference of an unknown form")
    return _Storage(pid[1].dtype, pid[2], pid[4])


def load_structure(data: bytes) -> Any:
    """``data.pkl``'s object, shape records for tensors. The opcodes ``torch.save`` writes for a
    state dict go through one tight loop (``_fast_load``: twice as fast as the pure-Python
    unpickler); a pickle it does not vouch for goes to ``StructureUnpickler``, whose answer or
    error stands."""
    try:
        return _fast_load(data)
    except Exception:  # noqa: BLE001 - an opcode or an object outside the loop's few: the full machine decides
        from .structure_unpickler import StructureUnpickler  # imports pickle: only for such a file

        return StructureUnpickler(io.BytesIO(data)).load()


class _Unsupported(Exception):
    """The fast loop does not read this pickle."""


_CALLABLE = (_ordered_dict, _rebuild_tensor, _rebuild_parameter)  # what REDUCE may call: find_class's
_STAND_INS = (_rebuild_tensor, _ordered_dict, _StorageType, _Storage, _View, MAX_DIMS)  # a run of tensors needs


def _fast_load(data: bytes) -> Any:
    """The pickle machine of ``StructureUnpickler`` for protocol 2 and 3 (``torch.save``'s) and
    the objects a state dict and its metadata hold: strings, ints, floats, None, bools, tuples,
    lists, dicts, ``OrderedDict``, tensors and parameters. Same objects, same checks (keys are
    strings or ints; BUILD only on a dict, its state dropped); anything else raises. Runs of whole
    state-dict entries are matched in C by ``pickle_runs``, under the same checks."""
    stack: list = []
    metastack: list = []
    memo = runs.Memo()
    tried = 0  # no run of entries is tried before this position (io.pickle_runs.read)
    globals_: dict[bytes, Any] = {}  # b'module\nname\n' -> its stand-in
    pos, end = 0, len(data)
    uint32 = _unpack_uint32
    while pos < end:
        op = data[pos]
        pos += 1
        if op == 0x72:  # LONG_BINPUT
            memo[uint32(data, pos)[0]] = stack[-1]
            pos += 4
        elif op == 0x68:  # BINGET
            stack.append(memo[data[pos]])
            pos += 1
        elif op == 0x4B:  # BININT1
            stack.append(data[pos])
            pos += 1
        elif op == 0x58:  # BINUNICODE
            n = uint32(data, pos)[0]
            pos += 4
            if pos + n > end:
                raise _Unsupported("a truncated string")
            if pos > tried and data[pos + n:pos + n + 1] == b"r":  # a name put in the memo: maybe a run
                items, tried = runs.read(data, pos - 5, memo, _STAND_INS)
                if items is not None:
                    stack += items
                    pos = tried
                    continue
            stack.append(str(data[pos:pos + n], "utf-8", "surrogatepass"))
            pos += n
        elif op == 0x28:  # MARK
            metastack.append(stack)
            stack = []
        elif op == 0x74:  # TUPLE
            items = stack
            stack = metastack.pop()
            stack.append(tuple(items))
        elif op == 0x52:  # REDUCE
            args = stack.pop()
            func = stack[-1]
            if func not in _CALLABLE or type(args) is not tuple:
                raise _Unsupported("REDUCE")
            stack[-1] = func(*args)
        elif op == 0x4D:  # BININT2
            stack.append(data[pos] | data[pos + 1] << 8)
            pos += 2
        elif op == 0x29:  # EMPTY_TUPLE
            stack.append(())
        elif op == 0x85:  # TUPLE1
            stack[-1] = (stack[-1],)
        elif op == 0x51:  # BINPERSID
            stack.append(_persistent_load(stack.pop()))
        elif op == 0x89:  # NEWFALSE
            stack.append(False)
        elif op == 0x7D:  # EMPTY_DICT
            stack.append({})
        elif op == 0x73:  # SETITEM
            value = stack.pop()
            key = stack.pop()
            if type(key) is not str and type(key) is not int or not isinstance(stack[-1], dict):
                raise _Unsupported("SETITEM")
            stack[-1][key] = value
        elif op == 0x6A:  # LONG_BINGET
            stack.append(memo[uint32(data, pos)[0]])
            pos += 4
        elif op == 0x71:  # BINPUT
            memo[data[pos]] = stack[-1]
            pos += 1
        elif op == 0x4A:  # BININT
            stack.append(_unpack_int32(data, pos)[0])
            pos += 4
        elif op == 0x75:  # SETITEMS
            items = stack
            stack = metastack.pop()
            target = stack[-1]
            keys = items[0::2]
            if len(items) % 2 or not isinstance(target, dict) or \
                    not all(type(k) is str or type(k) is int for k in keys):
                raise _Unsupported("SETITEMS")
            for i in range(0, len(items), 2):
                target[items[i]] = items[i + 1]
        elif op == 0x86:  # TUPLE2
            stack[-2:] = [(stack[-2], stack[-1])]
        elif op == 0x87:  # TUPLE3
            stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
        elif op == 0x88:  # NEWTRUE
            stack.append(True)
        elif op == 0x4E:  # NONE
            stack.append(None)
        elif op == 0x5D:  # EMPTY_LIST
            stack.append([])
        elif op == 0x61:  # APPEND (of the objects here, only a list has append and extend)
            value = stack.pop()
            stack[-1].append(value)
        elif op == 0x65:  # APPENDS
            items = stack
            stack = metastack.pop()
            stack[-1].extend(items)
        elif op == 0x47:  # BINFLOAT
            stack.append(_unpack_double(data, pos)[0])
            pos += 8
        elif op == 0x8A:  # LONG1
            n = data[pos]
            stack.append(int.from_bytes(data[pos + 1:pos + 1 + n], "little", signed=True))
            pos += 1 + n
        elif op == 0x63:  # GLOBAL
            stop = data.index(b"\n", data.index(b"\n", pos) + 1) + 1
            spec = data[pos:stop]
            if spec not in globals_:
                module, name = spec[:-1].decode("utf-8").split("\n")
                globals_[spec] = _find_class(module, name)
            stack.append(globals_[spec])
            pos = stop
        elif op == 0x62:  # BUILD
            stack.pop()
            if not isinstance(stack[-1], dict):
                raise _Unsupported("BUILD")
        elif op == 0x80:  # PROTO
            if data[pos] > 3:
                raise _Unsupported("protocol 4 or later")
            pos += 1
        elif op == 0x2E:  # STOP
            return stack.pop()
        else:
            raise _Unsupported(f"opcode {op:#x}")
    raise _Unsupported("no STOP")


MAX_EXPANSION = 4  # a torch zip stores its members; allow some compression, not a zip bomb


def zip_too_large(members, size: int) -> str | None:
    """Why a torch zip of ``size`` bytes whose ``members`` (``zipfile``'s infolist, or
    ``zip_directory``'s) are these would unpack to far more than its size (a zip bomb), or None."""
    total = sum(i.file_size for i in members)
    if total > MAX_EXPANSION * size + 2**20:
        return f"its members unpack to {total:,} bytes from a {size:,}-byte file"
    return None


MAX_STRUCTURE = 64 * 2**20  # a state dict's data.pkl is ~100 bytes a tensor; beyond this, torch's loader


class Member:
    """A stored storage member: where its bytes lie, how many, and the CRC-32 the zip gives them."""

    __slots__ = ("name", "start", "size", "crc")

    def __init__(self, name: str, start: int, size: int, crc: int) -> None:
        self.name, self.start, self.size, self.crc = name, start, size, crc


class Layout:
    """Where one tensor's values lie in a torch zip: what a lazy reader needs to read it alone."""

    __slots__ = ("member", "start", "dtype", "offset", "shape", "stride")

    def __init__(self, member: Member, dtype: str, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.member = member
        self.start = member.start  # the file offset of its storage's first byte
        self.dtype, self.offset, self.shape, self.stride = dtype, offset, shape, stride


def torch_zip_layout(path: Path, f=None, *, layouts: bool = True) -> tuple[Checkpoint, dict[str, Layout] | None]:
    """(the checkpoint's structure, each tensor's ``Layout``), reading ``f`` (an open file) or
    ``path``. The layouts are None where the values cannot be read in place (compressed members,
    big-endian storages; a lazy reader then loads the file) or were not asked for."""
    size = path.stat().st_size if f is None else os.fstat(f.fileno()).st_size
    members, root, info, data, in_place = _contents(path, f, size)
    if len(data) != info.file_size:
        raise NeedsTorch("data.pkl is not the size the zip says")
    try:
        obj = load_structure(data)
    except NeedsTorch:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged pickle: torch's loader says what
        raise NeedsTorch(f"{type(e).__name__}: {e}") from None

    ckpt = unwrap(path, "torch-zip", obj, lambda v: isinstance(v, _View))
    views = ckpt.tensors
    ckpt.tensors = _resolve(path, views, members, f"{root}data/")
    if not (layouts and in_place):
        return ckpt, None
    from .zip_directory import data_start

    stored: dict[str, Member] = {}
    where = {}
    opened = f if f is not None else open(path, "rb")  # noqa: SIM115 - once for every member
    try:
        for name, v in views.items():
            member = f"{root}data/{v.storage.key}"
            if member not in stored:
                info = members[member]
                if (start := data_start(opened.fileno(), info.header_offset)) is None:
                    raise NeedsTorch("a member without its local header")
                stored[member] = Member(member, start, info.file_size, info.CRC)
            where[name] = Layout(stored[member], v.storage.dtype, v.offset, v.shape, v.stride)
    finally:
        if f is None:
            opened.close()
    return ckpt, where


def _resolve(path: Path, views: dict[str, _View], members: dict, folder: str) -> dict[str, TensorMeta]:
    """Each view's shape record, once its storage is in the zip and holds every value it claims.
    ``extent_error`` runs once per distinct (size, stride, offset, storage size): a checkpoint has
    a few dozen for a thousand tensors, and a layout that fits one tensor fits them all."""
    dtypes: dict[str, str] = {}  # storage key -> the dtype of its first reference
    fits: set[tuple] = set()  # (size, stride, offset, values in the storage) that extent_error passed
    out = {}
    for name, view in views.items():
        storage = view.storage
        key, dtype = storage.key, storage.dtype
        if dtypes.setdefault(key, dtype) != dtype:
            # torch's loader keeps a storage's first dtype for every view of it: it decides
            raise NeedsTorch(f"storage {key} referenced with two dtypes")
        info = members.get(folder + key)
        itemsize = ITEMSIZE[dtype]
        if info is None or info.file_size < storage.numel * itemsize:
            raise Inflate3dError(f"{path}: tensor {text(name, 200)}: its storage {text(key, 50)} is "
                                 "missing or shorter than the file says; the file is corrupt")
        layout = (view.shape, view.stride, view.offset, info.file_size // itemsize)
        if layout not in fits:
            if why := extent_error(path, name, *layout):
                raise Inflate3dError(why)
            fits.add(layout)
        out[name] = TensorMeta(view.shape, dtype)
    return out


def _contents(path: Path, f, size: int):
    """(members by name, the root folder, data.pkl's member, its bytes, whether the storages can be
    read in place): through ``zip_directory`` for the zips torch writes, else ``zipfile``."""
    from .zip_directory import read_directory, read_stored

    opened = f if f is not None else open(path, "rb")  # noqa: SIM115
    try:
        fd = opened.fileno()
        listed = read_directory(fd, size)
        if listed is not None:
            found = _members(path, size, listed, lambda m: read_stored(fd, m))
            if found is not None:
                return found
    finally:
        if f is None:
            opened.close()
    import zipfile

    try:
        z = zipfile.ZipFile(path if f is None else f)
    except Exception as e:  # noqa: BLE001 - the loader's verdict on the same bytes, in its words
        raise Inflate3dError(f"{path}: corrupt torch zip checkpoint ({type(e).__name__}: {str(e)[:200]}); "
                             "the file is truncated or damaged") from None
    try:
        with z:
            return _members(path, size, z.infolist(), z.read)  # type: ignore[return-value]
    except (Inflate3dError, NeedsTorch):
        raise
    except Exception as e:  # noqa: BLE001 - zipfile on damaged bytes: the loader words the error
        raise NeedsTorch(f"{type(e).__name__}: {e}") from None


def _members(path: Path, size: int, listed: list, read):
    """``_contents`` from a member list and ``read(member) -> bytes`` (None: this reader declines)."""
    if too_large := zip_too_large(listed, size):
        raise Inflate3dError(f"{path}: refused: {too_large} (torch stores its members uncompressed)")
    members = {i.filename: i for i in listed}
    if len(members) != len(listed):
        raise NeedsTorch("duplicate member names")
    pickles = [n for n in members if n.endswith(".pkl")]
    if len(pickles) != 1 or not pickles[0].endswith("/data.pkl") or pickles[0].count("/") != 1:
        raise NeedsTorch("not one data.pkl")
    info = members[pickles[0]]
    if info.file_size > MAX_STRUCTURE:
        raise NeedsTorch("a very large pickle")
    root = pickles[0][: -len("data.pkl")]
    data = read(info)  # once, into memory: the unpickler reads it byte by byte
    order = members.get(f"{root}byteorder")
    byteorder = b"little" if order is None else read(order)
    if data is None or byteorder is None:
        return None
    in_place = byteorder == b"little" and all(m.compress_type == 0 for m in members.values())  # ZIP_STORED
    return members, root, info, data, in_place
