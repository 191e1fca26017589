"""Architecture settings written as ``KEY=VALUE`` (``--set slow_pathway.lateral_norm=true``).

Torch-free, so the command line can reject a malformed setting before importing anything heavy.
A dotted key is a nested setting (``slow_pathway.lateral_norm=true`` -> ``{'slow_pathway':
{'lateral_norm': True}}``); values are Python literals, with ``true``/``false``/``none`` also
accepted and ``1,7,7`` read as a tuple. Which keys an architecture takes is checked where the
network is built (``inflate3d.slowfast.archs``).
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidInputError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> Any:
    """``'true'`` -> True, ``'4'`` -> 4, ``'1,7,7'`` / ``'(1,7,7)'`` -> (1, 7, 7), ``'3x1x1'`` -> '3x1x1'."""
    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text  # a bare word such as 3x1x1 or pytorch
    return as_tuples(value) if isinstance(value, list) else value


def parse_settings(items: Iterable[str]) -> dict[str, Any]:
    """``['slow_pathway.lateral_norm=true', 'speed_ratio=4']`` -> nested overrides.
    A malformed item or a key given twice is an ``InvalidInputError`` naming it."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise InvalidInputError(f"setting {item!r}: expected KEY=VALUE, e.g. "
                                    "slow_pathway.lateral_norm=true or speed_ratio=4")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise InvalidInputError(f"setting {item!r}: {p} is already set to a value")
            node = child
        if leaf in node:
            raise InvalidInputError(f"setting {item!r}: {key} is given twice")
        node[leaf] = parse_value(value)
    return out


def merge_settings(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, nested dicts merged key by key."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for k, v in extra.items():
        out[k] = merge_settings(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def format_settings(settings: Mapping[str, Any]) -> str:
    """``{'slow_pathway': {'lateral_norm': True}, 'speed_ratio': 4}`` ->
    ``slow_pathway.lateral_norm=True, speed_ratio=4`` (what ``parse_settings`` reads back)."""
    return ", ".join(f"{k}={_text(v)}" for k, v in flatten_settings(settings).items())


def flatten_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, Mapping):
            out.update(flatten_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _text(v: Any) -> str:
    """Numbers and flat tuples of numbers as typed (``4``, ``1,7,7``); anything else as a Python
    literal without spaces, so that ``', '`` only ever separates settings."""
    if isinstance(v, (tuple, list)) and all(isinstance(x, (int, float)) for x in v):
        return ",".join(str(x) for x in v)
    if isinstance(v, (tuple, list)):
        return repr(as_tuples(v)).replace(", ", ",")
    return str(v)


def as_tuples(v: Any) -> Any:
    """Lists and tuples, nested, as tuples (settings compare as tuples; JSON and configs give lists)."""
    return tuple(as_tuples(x) for x in v) if isinstance(v, (tuple, list)) else v


def read_recorded_settings(text: str) -> dict[str, Any]:
    """The ``arch_settings`` a file's metadata records: ``format_settings`` text
    (``slow_pathway.lateral_norm=True, speed_ratio=4``) or, from older files, a JSON object;
    ``{}`` for none or for text that is neither."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    try:
        return parse_settings(text.split(", "))
    except InvalidInputError:
        return {}
