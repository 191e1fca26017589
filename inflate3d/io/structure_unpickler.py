"""The full pickle machine for a torch zip's ``data.pkl``, when ``io.torch_zip``'s fast loop does
not vouch for the file: Python's own pure-Python unpickler, with torch's globals resolved to
``io.torch_zip``'s stand-ins and nothing hashed but strings and ints. Its own module so that the
common case (the fast loop) imports no ``pickle``.
"""
from __future__ import annotations

import pickle
from typing import Any

from .structure import NeedsTorch
from .torch_zip import _find_class, _persistent_load, _Storage


# The opcodes torch's weights-only loader reads (torch/_weights_only_unpickler.py): the loader that
# convert, verify and diff use refuses any other, so this reader must not describe such a file as
# a checkpoint (inspect said "a 2D ResNet-18: inflate it" of a file inflate then refused).
TORCH_READS = frozenset(op[0] for op in (
    pickle.PROTO, pickle.STOP, pickle.GLOBAL, pickle.NEWOBJ, pickle.REDUCE, pickle.BUILD, pickle.APPEND,
    pickle.APPENDS, pickle.SETITEM, pickle.SETITEMS, pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2,
    pickle.TUPLE3, pickle.NONE, pickle.NEWFALSE, pickle.NEWTRUE, pickle.EMPTY_TUPLE, pickle.EMPTY_LIST,
    pickle.EMPTY_DICT, pickle.EMPTY_SET, pickle.BININT, pickle.BININT1, pickle.BININT2, pickle.BINFLOAT,
    pickle.BINUNICODE, pickle.SHORT_BINSTRING, pickle.BINPERSID, pickle.BINGET, pickle.LONG_BINGET,
    pickle.BINPUT, pickle.LONG_BINPUT, pickle.LONG1))


def _not_read_by_torch(self) -> None:
    raise NeedsTorch("a pickle opcode torch's weights-only loader does not read")  # the loader names it


class StructureUnpickler(pickle._Unpickler):  # pure Python: the C one sizes its memo from the file
    dispatch = {op: (load if op in TORCH_READS else _not_read_by_torch)
                for op, load in pickle._Unpickler.dispatch.items()}

    def find_class(self, module: str, name: str) -> Any:
        return _find_class(module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        return _persistent_load(pid)

    def load_build(self) -> None:
        """BUILD only on dicts (a state dict's ``_metadata``), and it is dropped: no attribute of any
        object is set from the file."""
        self.stack.pop()
        if not isinstance(self.stack[-1], dict):
            raise NeedsTorch("BUILD on something other than a dict")

    # Nothing from the file is hashed but strings and ints: CPython hashes and compares nested
    # tuples recursively in C, and a key nested 200,000 deep overflowed its stack (a segfault).
    # Objects are built by the pure-Python machine's own stack, so their depth needs no other bound.
    def load_setitem(self) -> None:
        _plain_keys(self.stack[-2:-1])
        pickle._Unpickler.load_setitem(self)

    def load_setitems(self) -> None:
        _plain_keys(self.stack[0::2])  # the items since MARK
        pickle._Unpickler.load_setitems(self)

    def load_set(self) -> None:
        raise NeedsTorch("a set")  # a state dict has none (torch reads only an empty one): the loader decides

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.EMPTY_SET[0]] = load_set  # DICT, ADDITEMS and FROZENSET: torch reads none of them


def _plain_keys(keys) -> None:
    if not all(type(k) is str or type(k) is int for k in keys):
        raise NeedsTorch("a dict key that is not a string")

