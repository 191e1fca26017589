"""``--set KEY=VALUE``: architecture settings given on the command line, as build overrides.

Values are Python literals (``4``, ``(1, 7, 7)``, ``True``); anything else is a string. A dotted
key reaches into a SlowFast pathway: ``slow_pathway.lateral_norm=True``.
"""
from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

from ..errors import Inflate3dError


def parse_settings(items: Iterable[str]) -> dict[str, Any]:
    """``['speed_ratio=4', 'slow_pathway.fusion_kernel=7']`` ->
    ``{'speed_ratio': 4, 'slow_pathway': {'fusion_kernel': 7}}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not all(part.isidentifier() for part in key.split(".")):
            raise Inflate3dError(f"--set {item!r}: write KEY=VALUE, e.g. --set speed_ratio=4")
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise Inflate3dError(f"--set {item!r}: {part} is already set to a value")
        node[leaf] = value
    return out


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse view: ``{'slow_pathway': {'lateral_norm': True}}`` -> ``{'slow_pathway.lateral_norm': True}``."""
    flat: dict[str, Any] = {}
    for k, v in settings.items():
        if isinstance(v, dict):
            flat.update(flatten_settings(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat
