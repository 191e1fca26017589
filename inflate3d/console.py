"""The one object that owns all output: rich tables and messages for people, JSON for scripts.

Commands never print directly. In JSON mode stdout carries exactly one JSON document; messages and
errors go to stderr either way.
"""
from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console as RichConsole
from rich.markup import escape


class Console:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = RichConsole(highlight=False, soft_wrap=True)
        self.err = RichConsole(stderr=True, highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.json_mode and not self.quiet:
            self.out.print(message)

    def note(self, message: str) -> None:
        """Plain text (file names, keys, notes): never read as rich markup."""
        self.info(escape(message))

    def warn(self, message: str) -> None:
        self.err.print(f"[bold yellow]warning:[/] {escape(one_line(message))}")

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False)

    def table(self, title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              *, justify: Sequence[str] | None = None, markup: bool = False) -> None:
        """A table; the first column never wraps (it holds names). Cells are plain text unless
        ``markup``; a table whose columns are all empty has no header."""
        if self.json_mode or self.quiet:
            return
        from rich.table import Table

        t = Table(title=title, title_justify="left", title_style="bold", show_header=any(columns))
        for i, col in enumerate(columns):
            t.add_column(col, justify=(justify[i] if justify else "left"), no_wrap=i == 0)  # type: ignore[arg-type]
        for row in rows:
            t.add_row(*(str(c) if markup else escape(str(c)) for c in row))
        self.out.print(t)

    def status(self, message: str):
        """A spinner for people; nothing in JSON mode or when stdout is not a terminal."""
        if self.json_mode or self.quiet or not sys.stdout.isatty():
            return contextlib.nullcontext()
        return self.err.status(message)

    def emit_json(self, payload: Any) -> None:
        if self.json_mode:
            sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def one_line(message: str, limit: int = 2000) -> str:
    """A message that names keys and paths from a file, made safe for a terminal: one line,
    control characters (newlines, ESC sequences) shown escaped, and never longer than ``limit``
    characters (the middle of a 10 MiB key name is cut; the advice at the end stays)."""
    if len(message) > limit:
        head, tail = limit * 2 // 3, limit // 3
        message = f"{message[:head]} ... ({len(message) - head - tail:,} characters cut) ... {message[-tail:]}"
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
