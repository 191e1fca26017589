"""rich's console markup without importing rich: ``escape`` for text put into markup, and ``plain``
for what rich prints of it where there is no terminal (tags dropped, escapes undone, the control
codes rich strips stripped).

rich takes ~20 ms to import; a pipe, a log or ``inspect`` of a folder never needs it. The rules are
rich's own (``rich.markup``, ``rich.control``), and a test holds them to rich's output.
"""
from __future__ import annotations

import re

_TAGS = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")  # rich.markup.RE_TAGS
_TO_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
_STRIPPED = {7: None, 8: None, 11: None, 12: None, 13: None}  # rich.control.STRIP_CONTROL_CODES


def escape(text: str) -> str:
    """``text`` as markup that prints as ``text`` (rich.markup.escape)."""
    out = _TO_ESCAPE.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    if out.endswith("\\") and not out.endswith("\\\\"):
        return out + "\\"
    return out


def plain(markup: str) -> str:
    """The text rich prints for ``markup`` (no emoji codes replaced)."""
    pieces: list[str] = []
    position = 0
    for match in _TAGS.finditer(markup):
        full, escapes, _ = match.groups()
        start, end = match.span()
        if start > position:
            pieces.append(markup[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            pieces.append("\\" * backslashes)
            if escaped:
                pieces.append(full[len(escapes):])  # an escaped tag: its text, as it is
    if position < len(markup):
        pieces.append(markup[position:].replace("\\[", "["))
    return "".join(pieces).translate(_STRIPPED).expandtabs(8)
