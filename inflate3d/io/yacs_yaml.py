"""The scalars of the YAML a yacs ``CfgNode`` dumps (PySlowFast's and TimeSformer's ``cfg``),
without PyYAML.

PyYAML is not a dependency of inflate3d, and its parser recurses: a ``cfg`` of nested brackets
in a hostile checkpoint stopped it with a RecursionError. This reader takes what ``yaml.safe_dump``
writes for a config (block mappings by indentation, plain or quoted scalars, sections written as
one-line flow mappings of scalars) in one pass over the lines, and returns every scalar under its
dotted path (``SLOWFAST.ALPHA``). Lists and anything it does not read with certainty are left out:
a fact is then missing (and said to be assumed), never wrong.
"""
from __future__ import annotations

import re
from typing import Any

_KEY = re.compile(r"('(?:[^']|'')*'|[A-Za-z_][\w-]*):(?:[ \t]+(.*))?\Z")  # `KEY:` or `KEY: value`
# PyYAML's implicit resolvers (YAML 1.1): the plain decimal forms are read, the others left out
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?\Z|\.[0-9]+(?:[eE][-+][0-9]+)?\Z")
_OTHER = re.compile(r"""(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
    |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?.*|<<|=)\Z""", re.X)
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
          "yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
          "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False}
_NULLS = {"~", "null", "Null", "NULL"}
_UNREAD = object()


def read_scalars(text: str) -> dict[str, Any]:
    """{dotted path: value} for every scalar this reader is sure of (ints, floats, bools, None,
    strings)."""
    out: dict[str, Any] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings the line is inside
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        body = line.lstrip(" ")
        if not body.strip() or body.startswith("#"):
            continue
        indent = len(line) - len(body)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        m = _KEY.match(body.rstrip())
        key = None if m is None else _key(m)
        if key is None:  # a list item, a complex key, ...: what it holds is not read
            i = _block_end(lines, i, indent)
            continue
        value = m.group(2)
        if value is None or value.startswith("#"):  # a mapping (or list) follows, more indented
            stack.append((indent, key))
            continue
        path = ".".join([k for _, k in stack] + [key])  # at most one key per level of indent
        end = _block_end(lines, i, indent)  # every line is scanned by one such call at most
        more, i = lines[i:end], end
        if more and (not all(s.strip() for s in more) or any(s.lstrip().startswith("#") for s in more)):
            continue  # a blank line (a line break) or a comment inside a folded scalar: not read
        value = " ".join([value.strip()] + [s.strip() for s in more])  # folded over lines
        if value.startswith("{"):
            for name, item in _flow_mapping(value):
                out[f"{path}.{name}"] = item
            continue
        parsed = _scalar(value)
        if parsed is not _UNREAD:
            out[path] = parsed
    return out


def _key(m: re.Match) -> str | None:
    """A mapping key as a string, or None for a key PyYAML resolves to something else (``NO``,
    ``null``: a bool, None)."""
    key = _scalar(m.group(1))
    return key if isinstance(key, str) and "." not in key else None


def _block_end(lines: list[str], i: int, indent: int) -> int:
    """The index of the first line from ``i`` on indented no deeper than ``indent`` (blank lines
    before it are not the block's)."""
    end = j = i
    while j < len(lines):
        body = lines[j].lstrip(" ")
        if body.strip():
            if len(lines[j]) - len(body) <= indent:
                break
            end = j + 1
        j += 1
    return end


def _flow_mapping(text: str) -> list[tuple[str, Any]]:
    """``{A: 1, B: x}`` of scalars (an older PyYAML wrote small sections so); [] otherwise."""
    if not text.endswith("}"):
        return []
    parts, start, quote = [], 1, ""
    for at, c in enumerate(text[1:-1], 1):
        if quote:
            quote = "" if c == quote else quote  # '' inside a quoted scalar closes and reopens it
        elif c in "'\"":
            quote = c
        elif c in "{}[]#":
            return []
        elif c == ",":
            parts.append(text[start:at])
            start = at + 1
    parts.append(text[start:-1])
    items = []
    for part in filter(None, (p.strip() for p in parts)):
        m = _KEY.match(part)
        if quote or m is None or m.group(2) is None or (key := _key(m)) is None or \
                (value := _scalar(m.group(2))) is _UNREAD:
            return []
        items.append((key, value))
    return items


def _scalar(text: str) -> Any:
    """A scalar as PyYAML's safe loader resolves it, for the forms a dump writes; _UNREAD for
    anything else."""
    text = text.strip()
    if text[:1] == "'":
        inner = text[1:-1]
        if len(text) < 2 or text[-1] != "'" or "'" in inner.replace("''", ""):
            return _UNREAD
        return inner.replace("''", "'")
    if text[:1] == '"':
        inner = text[1:-1]
        if len(text) < 2 or text[-1] != '"' or "\\" in inner or '"' in inner:
            return _UNREAD
        return inner
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip()
    if not text or text[0] in "-?:,[]{}#&*!|>%@`" and not (text[0] in "-?:" and text[1:2] not in ("", " ")) \
            or ": " in text or text.endswith(":") or "\t" in text:
        return _UNREAD
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if _OTHER.match(text):
        return _UNREAD  # numbers with underscores, octal, hex, base 60, infinities, dates...
    return text
