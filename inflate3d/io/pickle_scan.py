"""Look at a pickle before anything unpickles it: every global it would import, how deeply its
objects nest, and whether its opcodes are intact. ``pickletools.genops`` only reads opcodes; the
pickle machine's stack is simulated (strings, marks, memo), so a global is named even when the
file hides it (a ``POP`` between ``STACK_GLOBAL``'s two strings, strings fetched from the memo).

Nesting is bounded (``MAX_DEPTH``) because CPython hashes and compares nested tuples recursively in
C: a dict key nested 200,000 deep overflowed the C stack (a segfault, no message). So is what an
object unfolds to (``MAX_UNFOLD``): the memo lets a tuple hold the one before it twice, 60 times
over, and hashing that visits 2**60 tuples (a hang). Reads are streamed and capped by the bytes
actually there, so a size field claiming 2**60 allocates nothing.
"""
from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import Inflate3dError
from .torch_zip import zip_too_large

MAX_DEPTH = 1000  # real checkpoints nest < 30 deep (mmaction2's meta with its config is the deepest)
MAX_UNFOLD = 2**24  # objects a value may unfold to beyond one per byte of its pickle (~0.3 s to hash)

_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
            "BINSTRING", "STRING"}
_GETS = {"BINGET", "LONG_BINGET", "GET"}
_PUTS = {"BINPUT", "LONG_BINPUT", "PUT"}
_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}  # change their first operand
_MARK = object()


@dataclass
class Scan:
    """What one or more pickles would do when unpickled."""

    globals: list[str] = field(default_factory=list)
    depth: int = 0  # deepest nesting of containers
    unfolded: bool = False  # an object unfolds to more than MAX_UNFOLD objects (plus the pickle's length)
    damage: str | None = None  # the first damaged opcode, if any
    pickles: int = 0


class _Capped:
    """A read-only view of a buffered file that never asks it for more than is left in it (a size
    field claiming 2**60 bytes would otherwise make ``read`` allocate that much up front)."""

    def __init__(self, f: IO[bytes], left: int) -> None:
        self._f, self.left, self.pos = f, left, 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(self.left if n is None or n < 0 else min(n, self.left))
        self.left -= len(data)
        self.pos += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._f.readline(self.left if limit is None or limit < 0 else min(limit, self.left))
        self.left -= len(data)
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos


def scan_stream(stream: IO[bytes], scan: Scan) -> bool:
    """Scan one pickle from ``stream`` into ``scan``; False when the stream held no pickle."""
    stack: list = []  # cells [depth, short string or None, objects it unfolds to], or _MARK
    memo: dict[int, list] = {}
    started = False
    try:
        for op, arg, pos in pickletools.genops(stream):
            started = True
            name = op.name
            if name in _STRINGS:
                stack.append([0, arg if isinstance(arg, str) and len(arg) <= 256 else None, 1])
            elif name == "MARK":
                stack.append(_MARK)
            elif name in _GETS:
                stack.append(memo.get(int(arg)) or [0, None, 1])
            elif name in _PUTS or name == "MEMOIZE":
                if not stack or stack[-1] is _MARK:
                    raise ValueError(f"{name} on an empty stack")
                memo[int(arg) if name in _PUTS else len(memo)] = stack[-1]
            elif name in ("GLOBAL", "INST"):
                scan.globals.append(str(arg).replace(" ", "."))
                if name == "INST":
                    _pop_mark(stack)
                stack.append([0, None, 1])
            elif name == "STACK_GLOBAL":
                b, a = _pop(stack), _pop(stack)
                scan.globals.append(f"{a[1]}.{b[1]}" if a[1] is not None and b[1] is not None
                                    else "a global whose name is computed")
                stack.append([0, None, 1])
            elif name == "POP":
                if stack and stack[-1] is _MARK:
                    stack.pop()
                else:
                    _pop(stack)
            elif name == "POP_MARK":
                _pop_mark(stack)
            elif name == "DUP":
                stack.append(stack[-1] if stack else [0, None, 1])
            elif name == "STOP":
                break
            elif not op.stack_before:  # pushes one new object (or nothing: PROTO, FRAME)
                if op.stack_after:
                    stack.append([0, None, 1])
                continue
            else:
                _generic(op, stack, scan)
            if stack and stack[-1] is not _MARK and stack[-1][0] > scan.depth:
                scan.depth = stack[-1][0]
                if scan.depth > MAX_DEPTH:  # refused whatever follows: stop reading
                    break
            if stack and stack[-1] is not _MARK and stack[-1][2] > MAX_UNFOLD + (pos or 0):
                scan.unfolded = True  # shared, not merely long: refused, stop reading
                break
        else:
            if started:
                raise ValueError("no STOP opcode: the pickle is truncated")
    except (ValueError, TypeError, IndexError, EOFError, UnicodeDecodeError, OverflowError) as e:
        if started:
            scan.damage = scan.damage or str(e).splitlines()[0][:200]
    if started:
        scan.pickles += 1
    return started


def _pop(stack: list) -> list:
    if not stack or stack[-1] is _MARK:
        raise ValueError("pop from an empty stack")
    return stack.pop()


def _pop_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is _MARK:
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise ValueError("no MARK on the stack")


def _generic(op, stack: list, scan: Scan) -> None:
    before, after = op.stack_before, op.stack_after
    if pickletools.markobject in before:
        above = _pop_mark(stack)
        below = [_pop(stack) for _ in range(before.index(pickletools.markobject))][::-1]
        args = below + above
    else:
        args = [_pop(stack) for _ in range(len(before))][::-1]
    if not after:
        return
    if op.name in _MUTATORS:  # the container stays the same object: its depth grows at most by one
        cell = args[0]
        if len(args) > 1:
            cell[0] = max(cell[0], 1 + max(c[0] for c in args[1:]))
            cell[2] += sum(c[2] for c in args[1:])
    else:
        cell = [1 + max(c[0] for c in args) if args else 0, None, 1 + sum(c[2] for c in args)]
    stack.append(cell)


def scan_file(path: Path, *, pickles: int = 4) -> Scan:
    """The pickles of a torch zip (every ``.pkl`` member, streamed), or the first ``pickles`` of a
    legacy torch file or plain pickle (legacy torch: magic, protocol, sys info, the state dict)."""
    scan = Scan()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if too_large := zip_too_large(z.infolist(), path.stat().st_size):
                raise ValueError(too_large)
            for info in z.infolist():
                if info.filename.endswith(".pkl"):
                    with z.open(info) as member:
                        scan_stream(_Capped(member, info.file_size), scan)
        return scan
    with open(path, "rb") as f:
        capped = _Capped(f, path.stat().st_size)
        for _ in range(pickles):
            if not scan_stream(capped, scan) or scan.damage or scan.depth > MAX_DEPTH or scan.unfolded:
                break
    return scan


def prescan(path: Path, pickles: int = 4) -> None:
    """Before any unpickler runs, trusted file or not: the opcodes must be intact and nest at most
    ``MAX_DEPTH`` deep (deeper can crash CPython). Which globals are allowed is the unpickler's
    call; a refusal then names every global the scan saw."""
    check_scan(path, lambda: scan_file(path, pickles=pickles))


def check_scan(path: Path, scan_fn) -> None:
    """``prescan``'s verdict on the ``Scan`` that ``scan_fn`` makes (of a file, or of bytes)."""
    try:
        scan = scan_fn()
    except Exception as e:  # noqa: BLE001 - reading opcodes runs nothing: a damaged file
        raise Inflate3dError(f"{path}: corrupt pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if scan.depth > MAX_DEPTH:
        raise Inflate3dError(f"{path}: refused: objects nested more than {MAX_DEPTH} deep (unpickling "
                             "them could crash Python); the file is corrupt or hostile. Nothing was run")
    if scan.unfolded:
        raise Inflate3dError(f"{path}: refused: objects that share their parts so often that they unfold to more "
                             f"than {MAX_UNFOLD:,} objects (hashing or printing them would not end); the file is "
                             "corrupt or hostile. Nothing was run")
    if scan.damage:
        raise Inflate3dError(f"{path}: corrupt pickle ({scan.damage}); the file is truncated or damaged")


def pickle_globals(path: Path) -> list[str]:
    """Every global referenced by the pickles of a torch zip, a legacy torch file or a plain pickle
    (as many as can be read: a damaged file yields what precedes the damage)."""
    try:
        return list(dict.fromkeys(scan_file(path).globals))
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, KeyError, RuntimeError):
        return []


def disallowed(globals_: list[str]) -> list[str]:
    """The globals torch's weights_only unpickler would not build."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):  # a torch without the private list: report them all
        allowed = set()
    return [g for g in dict.fromkeys(globals_) if g not in allowed and not g.startswith("torch._utils._rebuild")]
