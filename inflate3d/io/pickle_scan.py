"""List the globals a pickle would import, without unpickling it (``pickletools.genops`` only
reads opcodes), so a refusal can name every offending one, not just the first."""
from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
            "BINSTRING", "STRING"}


def _globals_in(data: bytes | io.BufferedIOBase) -> tuple[list[str], int]:
    """(globals, bytes consumed) of one pickle."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    found: list[str] = []
    memo: dict[int, object] = {}
    pushes: list[object] = []  # what each opcode pushed: the string, or None for anything else
    end = 0
    try:
        for op, arg, pos in pickletools.genops(stream):
            end = pos
            name = op.name
            if name in _STRINGS:
                pushes.append(arg)
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                pushes.append(memo.get(int(arg)))
            elif name == "MEMOIZE":
                memo[len(memo)] = pushes[-1] if pushes else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = pushes[-1] if pushes else None
            elif name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
                pushes.append(None)
            elif name == "STACK_GLOBAL":
                if len(pushes) >= 2 and isinstance(pushes[-1], str) and isinstance(pushes[-2], str):
                    found.append(f"{pushes[-2]}.{pushes[-1]}")
                pushes.append(None)
            elif name == "STOP":
                break
            else:
                pushes.append(None)
    except (ValueError, TypeError, IndexError, EOFError, UnicodeDecodeError):
        pass  # a damaged pickle: report what was seen before the damage
    return found, end + 1


def pickle_globals(path: Path) -> list[str]:
    """Every global referenced by the pickles of a torch zip, a legacy torch file or a plain pickle
    (as many as can be read: a damaged file yields what precedes the damage)."""
    try:
        return _pickle_globals(path)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, KeyError, RuntimeError):
        return []


def _pickle_globals(path: Path) -> list[str]:
    found: list[str] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if member.endswith(".pkl"):
                    found += _globals_in(z.read(member))[0]
    else:
        data = path.read_bytes()[: 64 * 2**20]
        offset = 0
        for _ in range(4):  # legacy torch: magic, protocol, sys info, then the state dict
            globs, used = _globals_in(data[offset:])
            found += globs
            offset += used
            if offset >= len(data):
                break
    return list(dict.fromkeys(found))


def disallowed(globals_: list[str]) -> list[str]:
    """The globals torch's weights_only unpickler would not build."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):  # a torch without the private list: report them all
        allowed = set()
    return [g for g in globals_ if g not in allowed and not g.startswith("torch._utils._rebuild")]
