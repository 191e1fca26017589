"""The registered names, known without importing torch, so the command line can refuse a typo
(and suggest the name meant) before any heavy import. ``tests/cli`` checks that these are exactly
the architectures ``inflate3d.slowfast.archs`` registers."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

_DEPTHS = (18, 34, 50, 101, 152)
ARCH_NAMES: tuple[str, ...] = (
    *(f"i3d_r{d}" for d in _DEPTHS), *(f"slowonly_r{d}" for d in _DEPTHS), *(f"tsm_r{d}" for d in _DEPTHS),
    "slowfast_r50_4x16", "slowfast_r50_8x8", "slowfast_r101_4x16", "slowfast_r101_8x8")
SCHEME_NAMES: tuple[str, ...] = ("mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "torchvision3d",
                                 "torchvision", "tsm")
METHOD_NAMES: tuple[str, ...] = ("mean", "center")
METHOD_ALIASES = {"centre": "center", "centered": "center", "centred": "center", "average": "mean"}


def suggest(name: str, choices: Iterable[str]) -> list[str]:
    """The choices ``name`` most likely meant: the same name up to case and ``-``/``_``, else the
    closest spellings (``i3d_r81`` -> ``i3d_r18``)."""
    choices = list(choices)
    norm = name.strip().lower().replace("-", "_")
    if norm in choices:
        return [norm]
    return difflib.get_close_matches(norm, choices, n=3, cutoff=0.6)


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = suggest(name, choices)
    hint = f"did you mean {' or '.join(close)}?" if close else f"choose one of: {', '.join(choices)}"
    return f"unknown {kind} {name!r}; {hint}"


def unknown_arch_message(name: str, choices: Iterable[str] = ARCH_NAMES) -> str:
    return unknown_name_message("architecture", name, choices) + " (all of them: inflate3d archs)"
