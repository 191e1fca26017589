"""Runs of a state dict's entries, each matched whole by one regular expression.

``torch.save`` writes every tensor of a state dict as the same thirty opcodes, and every module's
``_metadata`` line as the same seven; only the names, the storage's key and size, the offset, size,
stride and the memo indices change. ``torch_zip._fast_load`` pays Python for every opcode (I3D-R152:
33,679 of them); here ``re`` matches one entry after the other in C and Python works on the
columns of the matches: I3D-R152's ``data.pkl``, 7.5 -> 4.7 ms. What no pattern matches (the first
entries, which bring the globals in; shared storages; anything else) stays with the loop.

Nothing is taken on trust: a run is used only when it leaves exactly the stack and memo the loop
would, else the loop reads it. Strings must have the length they declare; the memo indices the
run writes must be fresh and consecutive (as ``pickle`` writes them), so that it overwrites
nothing; every index it reads must have been written before it, and hold what the entry needs
(torch's tensor rebuilder, a storage type, 'storage', ``OrderedDict``). The run's own memo entries
are made only if a later opcode asks for one (``Memo``): a state dict never does.
"""
from __future__ import annotations

import re
import sys
from array import array
from collections import OrderedDict
from itertools import chain, repeat

_INT = rb"(?:K.|M..|J....)"  # BININT1, BININT2, BININT
_GET = rb"(?:h.|j....)"  # BINGET, LONG_BINGET
_TUPLE = rb"(?:" + _INT + rb"{1,3}[\x85-\x87]|\(" + _INT + rb"*t)"  # TUPLE1-3 or MARK ... TUPLE
# A key: BINUNICODE, its bytes (no NUL: that bounds the lazy scan to the key and its LONG_BINPUT)
_KEY = rb"X(....)([^\x00]*?)r(....)"

# key, then _rebuild_tensor_v2((('storage', type, key, location, numel)), offset, size, stride,
# requires_grad, OrderedDict()), every new object followed by its LONG_BINPUT
TENSOR = re.compile(
    _KEY +                                                            # 1 length 2 key 3 put
    rb"(" + _GET + rb")\(\((" + _GET + rb")(" + _GET + rb")" +        # 4 rebuild 5 'storage' 6 type
    rb"X(.)\x00\x00\x00([0-9]+)r(....)(" + _GET + rb")" +              # 7 length 8 storage key 9 put 10 location
    rb"(" + _INT + rb")tr(....)Q(" + _INT + rb")" +                    # 11 numel 12 put 13 offset
    rb"(?:\)|(" + _TUPLE + rb")r(....))" +                             # 14 size 15 put (none for ())
    rb"(?:\)|(" + _TUPLE + rb")r(....))" +                             # 16 stride 17 put
    rb"([\x88\x89])(" + _GET + rb")\)Rr(....)tr(....)Rr(....)",         # 18 requires_grad 19 OrderedDict 20-22 puts
    re.DOTALL)

# key, then {name: int} (a module's _metadata line: {'version': 1})
METADATA = re.compile(_KEY + rb"\}r(....)(" + _GET + rb")(" + _INT + rb")s", re.DOTALL)

_ONE_INT = re.compile(_INT, re.DOTALL)
USABLE = sys.byteorder == "little"  # array("I") reads the indices in the machine's order


class Memo(dict):
    """The pickle memo; the runs' entries go in only when an index is missing (a GET of one)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        super().__init__()
        self.pending: list = []  # (first index, last index, the run's entries) not in yet

    def __missing__(self, index: int):
        if not self.pending:
            raise KeyError(index)
        pending, self.pending = self.pending, []
        for _, _, entries in pending:
            for i, obj in entries():
                self.setdefault(i, obj)  # a later PUT of the same index stands: it came after
        return self[index]

    def fresh(self, puts: array) -> bool:
        """Whether a run may write ``puts``: consecutive, as ``pickle`` writes them, and over no
        entry made or pending."""
        if not puts or puts != array("I", range(puts[0], puts[0] + len(puts))):
            return False
        first, last = puts[0], puts[-1]
        return self.keys().isdisjoint(puts) and all(b < first or a > last for a, b, _ in self.pending)

    def add(self, puts: array, entries) -> None:
        self.pending.append((puts[0], puts[-1], entries))


class _Ints(dict):
    """Raw BININT1/2/BININT bytes -> the int, decoded once per distinct value."""

    __slots__ = ()

    def __missing__(self, raw: bytes) -> int:
        op = raw[0]
        value = raw[1] if op == 0x4B else int.from_bytes(raw[1:], "little", signed=op == 0x4A)
        self[raw] = value
        return value


class _Tuples(dict):
    """Raw tuple opcodes -> the tuple of ints, decoded once per distinct size or stride."""

    __slots__ = ("ints", "limit")

    def __init__(self, ints: _Ints, limit: int) -> None:
        super().__init__({None: ()})  # '()': EMPTY_TUPLE, matched without a group
        self.ints, self.limit = ints, limit

    def __missing__(self, raw: bytes) -> tuple[int, ...]:
        body = raw[1:-1] if raw[0] == 0x28 else raw[:-1]
        items = _ONE_INT.findall(body)
        value = tuple(map(self.ints.__getitem__, items))
        if raw[0] != 0x28 and len(value) != raw[-1] - 0x84 or len(value) > self.limit:
            raise ValueError("a tuple of another arity")  # TUPLE2 over three ints leaves one on the stack
        self[raw] = value
        return value


def _index(raw: bytes) -> int:
    return raw[1] if raw[0] == 0x68 else int.from_bytes(raw[1:], "little")


def _names(lengths, raw) -> list[str] | None:
    """The BINUNICODE strings ``raw``, decoded as the loop decodes them, if each has the length
    its opcode declares (else the lazy match cut a name wrongly: None)."""
    if array("I", b"".join(lengths)) != array("I", map(len, raw)):
        return None
    return list(map(str, raw, repeat("utf-8"), repeat("surrogatepass")))


def _one(column, memo: Memo):
    """The object the GET that every match of the run shares resolves to (None: not shared, or not
    written before the run)."""
    gets = set(column)
    if len(gets) != 1:
        return None
    return _before(next(iter(gets)), memo)


def _before(raw: bytes, memo: Memo):
    """What a GET resolves to before the run (else None). The run's own indices are fresh
    (``Memo.fresh``): a GET of one finds nothing."""
    try:
        return memo[_index(raw)]
    except KeyError:
        return None


def read(data: bytes, pos: int, memo: Memo, views) -> tuple[list | None, int]:
    """([key, object, key, object, ...], where the run ends) for a run of entries at ``pos``;
    (None, where the entries seen end) when none is there or the run is refused: the loop reads
    those bytes, and no run is tried before that end again (each try would scan the rest of the
    run: quadratic). ``views``: the stand-ins a tensor needs (see ``tensors``)."""
    if not USABLE:
        return None, pos
    matches = list(iter(TENSOR.scanner(data, pos).match, None))
    if matches:
        return tensors(matches, memo, views), matches[-1].end()
    matches = list(iter(METADATA.scanner(data, pos).match, None))
    if matches:
        return metadata(matches, memo), matches[-1].end()
    return None, pos


def tensors(matches: list[re.Match], memo: Memo, views) -> list | None:
    """[key, view, key, view, ...] for the ``TENSOR`` matches of one run, or None. ``views`` holds
    the stand-ins: (rebuild, OrderedDict maker, storage type class, storage class, view class, the
    most dimensions)."""
    rebuild, ordered_dict, storage_type, storage_cls, view_cls, max_dims = views
    (lengths, keys, p1, rebuilds, storages, types, key_lengths, storage_keys, p2, locations, numels, p3, offsets,
     sizes, p4, strides, p5, grads, dicts, p6, p7, p8) = zip(*map(re.Match.groups, matches))
    puts = array("I", b"".join(filter(None, chain.from_iterable(zip(p1, p2, p3, p4, p5, p6, p7, p8)))))
    if not memo.fresh(puts) or (names := _names(lengths, keys)) is None or \
            b"".join(key_lengths) != bytes(map(len, storage_keys)):
        return None
    if _one(rebuilds, memo) is not rebuild or _one(dicts, memo) is not ordered_dict or \
            _one(storages, memo) != "storage" or (location := _one(locations, memo)) is None:
        return None
    kinds = {}
    for raw in set(types):
        if not isinstance(kind := _before(raw, memo), storage_type):
            return None
        kinds[raw] = kind
    ints = _Ints()
    numel = list(map(ints.__getitem__, numels))
    if min(numel) < 0:  # torch refuses a negative size: its loader words it
        return None
    shapes = _Tuples(ints, max_dims)
    try:
        size, stride = list(map(shapes.__getitem__, sizes)), list(map(shapes.__getitem__, strides))
    except ValueError:
        return None
    if list(map(len, size)) != list(map(len, stride)):
        return None
    storage_names = list(map(str, storage_keys, repeat("ascii")))
    offset = list(map(ints.__getitem__, offsets))
    made = list(map(storage_cls, [kinds[t].dtype for t in types], storage_names, numel))
    out = list(map(view_cls, made, offset, size, stride))

    def memo_entries():
        """(index, object) in the order the run wrote them, as the loop would have made them."""
        objects = []
        for name, kind, key, n, raw_size, raw_stride, grad, view in zip(
                names, types, storage_names, numel, sizes, strides, grads, out):
            hooks = OrderedDict()
            objects += (name, key, ("storage", kinds[kind], key, location, n))
            if raw_size is not None:  # EMPTY_TUPLE is never put
                objects.append(view.shape)
            if raw_stride is not None:
                objects.append(view.stride)
            objects += (hooks, (view.storage, view.offset, view.shape, view.stride, grad == b"\x88", hooks), view)
        return zip(puts, objects)

    memo.add(puts, memo_entries)
    return list(chain.from_iterable(zip(names, out)))


def metadata(matches: list[re.Match], memo: Memo) -> list | None:
    """[key, {name: int}, ...] for the ``METADATA`` matches of one run, or None."""
    lengths, keys, p1, p2, names, values = zip(*map(re.Match.groups, matches))
    puts = array("I", b"".join(chain.from_iterable(zip(p1, p2))))
    if not memo.fresh(puts) or (keys := _names(lengths, keys)) is None:
        return None
    name = _one(names, memo)
    if type(name) is not str and type(name) is not int:  # a dict key is a string or an int, never hashed else
        return None
    ints = _Ints()
    dicts = [{name: v} for v in map(ints.__getitem__, values)]
    memo.add(puts, lambda: zip(puts, chain.from_iterable(zip(keys, dicts))))
    return list(chain.from_iterable(zip(keys, dicts)))
