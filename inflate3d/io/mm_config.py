"""The ``model`` of an OpenMMLab config, read from its text without running it.

mmaction2 (mmengine) checkpoints keep the training config in ``meta['cfg']``: the Python text of
``Config.pretty_text`` (``model = dict(type='Recognizer3D', backbone=dict(...), ...)``). Its
backbone states what the weights cannot: temporal strides, pools, alpha. The text is parsed, never
executed; only literals are evaluated (numbers, strings, ``None``/``True``/``False``, tuples,
lists, dicts, ``dict(key=value)``), a value of any other form is left out, and text that does not
parse, nests deeper than a config does, or is larger than any config gives nothing.
"""
from __future__ import annotations

import ast
from typing import Any

MAX_TEXT = 1 << 20  # 1 MiB; mmaction2's configs are tens of kilobytes
MAX_DEPTH = 32
_UNREAD = object()


def read_model(text: str) -> dict[str, Any]:
    """The config's ``model`` dict (the last assignment to ``model`` at the top level), its
    unreadable values left out; {} when there is none."""
    if not isinstance(text, str) or len(text) > MAX_TEXT or "model" not in text:
        return {}
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    value: Any = _UNREAD
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model" for t in node.targets):
            value = _literal(node.value, 0)
    return value if isinstance(value, dict) else {}


def _literal(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return _UNREAD
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(n, depth + 1) for n in node.elts]
        if any(v is _UNREAD for v in items):
            return _UNREAD
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        pairs = [(k.arg, k.value) for k in node.keywords]
        if any(name is None for name, _ in pairs):  # dict(**other)
            return _UNREAD
        return _mapping(pairs, depth)
    if isinstance(node, ast.Dict):
        keys = [_literal(k, depth + 1) if k is not None else _UNREAD for k in node.keys]
        if any(type(k) is not str for k in keys):
            return _UNREAD
        return _mapping(list(zip(keys, node.values)), depth)
    return _UNREAD


def _mapping(pairs, depth: int) -> dict[str, Any]:
    out = {}
    for name, value_node in pairs:
        value = _literal(value_node, depth + 1)
        if value is not _UNREAD:
            out[name] = value
    return out
