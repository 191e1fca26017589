"""``inflate3d.markup`` prints what rich prints where there is no terminal, and escapes as rich
escapes: checked against rich itself on hand-picked and generated text."""
from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console as RichConsole
from rich.errors import MarkupError
from rich.markup import escape as rich_escape

from inflate3d.markup import escape, plain


def rich_prints(markup: str) -> str:
    out = io.StringIO()
    RichConsole(file=out, force_terminal=False, soft_wrap=True, highlight=False, emoji=False).print(markup)
    return out.getvalue()[:-1]  # print's own newline


CASES = [
    "[bold green]wrote[/] out.safetensors (128.3 MiB, safetensors)",
    "[bold yellow]warning:[/] no ImageNet weights",
    r"a \[literal] bracket, \\[bold]two backslashes then a tag[/bold], \\\[escaped] after one",
    "key[0] and [1] stay, [green]✓[/] done",
    "tabs\there\tand\a bell, \b backspace, \r return, \x0b\x0c feeds",
    "ends with a backslash \\",
    ":smile: :warning: emoji codes stay as typed",
    "[link=https://example.com]a link[/link] and [@click]handler[/]",
    "nested [bold][red]r[/red] b[/bold] [#ff0000]hex[/]",
]


@pytest.mark.parametrize("markup", CASES)
def test_plain_is_what_rich_prints(markup):
    assert plain(markup) == rich_prints(markup)


text = st.lists(st.sampled_from(list("ab[]/\\=#@ \t\r\x07:.") + ["bold", "[/]", "[red]", "\\["]),
                max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(text)
def test_escaped_text_prints_as_itself_like_rich(s):
    assert escape(s) == rich_escape(s)
    assert plain(escape(s)) == rich_prints(rich_escape(s))


@settings(max_examples=400, deadline=None)
@given(text)
def test_any_markup_rich_accepts_prints_the_same(s):
    try:
        expected = rich_prints(s)
    except MarkupError:
        return  # rich refuses unbalanced closing tags; inflate3d's own messages have none
    assert plain(s) == expected


def test_a_pipe_gets_the_same_text_without_importing_rich(tmp_path):
    """Piped (stdout and stderr not terminals), inspect and help print plain text and never import
    rich; FORCE_COLOR (what a terminal gets) prints through rich, with its colour codes."""
    import os
    import subprocess
    import sys

    import torch
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"conv1.weight": torch.ones(4, 3, 7, 7)}, str(path))
    code = ("import sys\nfrom inflate3d.cli import main\nsys.argv = ['inflate3d', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint('RICH', 'rich' in sys.modules, file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    for args in (["inspect", str(path)], ["--help"], ["inspect", str(tmp_path / "missing.pth")]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
        assert out.stderr.strip().splitlines()[-1] == "RICH False", (args, out.stderr)
        assert "\x1b[" not in out.stdout + out.stderr
    missing = out.stderr.splitlines()[0]
    assert missing.startswith("error: ") and "missing.pth" in missing
    coloured = subprocess.run([sys.executable, "-c", code, "inspect", str(tmp_path / "missing.pth")],
                              capture_output=True, text=True, env={**env, "FORCE_COLOR": "1"})
    assert coloured.stderr.strip().splitlines()[-1] == "RICH True" and "\x1b[" in coloured.stderr
