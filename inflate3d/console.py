"""The one object that owns all output: rich tables and messages for people, plain text for pipes
and logs, JSON for scripts.

Commands never print directly. In JSON mode stdout carries exactly one JSON document; messages and
errors go to stderr either way. When stdout is not a terminal, tables are plain aligned text with
every cell whole (a key map or a hash cut to ``…`` is data lost), and nothing carries colour codes.
``NO_COLOR`` turns colour off on a terminal too; ``COLUMNS`` sets the width of terminal tables.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .markup import escape, plain

JSON_SCHEMA = 1  # the version of every command's --json document; bump on incompatible changes


def _stream(stderr: bool):
    """rich for a terminal (rich emits colour codes only there, honours ``NO_COLOR`` and
    ``FORCE_COLOR``, and takes its width from ``COLUMNS``); for a pipe or a file, the same text
    without importing rich (``inflate3d.markup``)."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty or os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") == "1":
        from rich.console import Console as RichConsole

        return RichConsole(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)
    return _Plain(stderr)


class _Plain:
    """What rich prints to a stream that is not a terminal: the markup's text, one line per call."""

    is_terminal = False

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr

    @property
    def file(self):
        return sys.stderr if self.stderr else sys.stdout  # looked up at each write, as rich does

    def print(self, message: str, **_style: Any) -> None:
        self.file.write(plain(message) + "\n")
        self.file.flush()


class Console:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = _stream(stderr=False)
        self.err = _stream(stderr=True)

    @property
    def plain(self) -> bool:
        """True when stdout is a pipe or a file: tables are printed whole, as aligned text."""
        return not self.out.is_terminal

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
        """A table; cells are plain text unless ``markup``; a table whose columns are all empty has
        no header. On a terminal, long cells fold onto more lines instead of being cut."""
        if self.json_mode or self.quiet:
            return
        if self.plain:
            self.out.file.write(plain_table(title, columns, rows, justify=justify, markup=markup))
            self.out.file.flush()
            return
        from rich.table import Table

        t = Table(title=title, title_justify="left", title_style="bold", show_header=any(columns))
        for i, col in enumerate(columns):
            t.add_column(col, justify=(justify[i] if justify else "left"),  # type: ignore[arg-type]
                         no_wrap=i == 0, overflow="fold")
        for row in rows:
            t.add_row(*(str(c) if markup else escape(str(c)) for c in row))
        self.out.print(t)

    def status(self, message: str):
        """A spinner for people; nothing in JSON mode or when stdout is not a terminal."""
        if self.json_mode or self.quiet or not sys.stdout.isatty() or not self.err.is_terminal:
            return contextlib.nullcontext()
        return self.err.status(message)

    def emit_json(self, payload: dict) -> None:
        """The command's one JSON document: ``ok`` first, then ``schema``, then the payload."""
        if self.json_mode:
            doc = {"ok": payload.get("ok", True), "schema": JSON_SCHEMA,
                   **{k: v for k, v in payload.items() if k != "ok"}}
            sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")
            sys.stdout.flush()


def plain_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                justify: Sequence[str] | None = None, markup: bool = False) -> str:
    """Columns aligned with two spaces, every cell whole, no box drawing and no colour: what a
    pipe or a log gets, easy to read, grep and diff."""
    def cell(c: Any) -> str:
        s = plain(str(c)) if markup else str(c)
        return " ".join(s.split("\n"))

    body = [[cell(c) for c in row] for row in rows]
    header = [str(c) for c in columns] if any(columns) else None
    lines = [header] if header else []
    lines += body
    widths = [max((len(r[i]) for r in lines if i < len(r)), default=0) for i in range(len(columns))]
    out = [title] if title else []
    for r in lines:
        parts = [(c.rjust(w) if justify and justify[i] == "right" else c.ljust(w))
                 for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(parts).rstrip())
    return "\n".join(out) + "\n"


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
