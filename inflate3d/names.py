"""The registered names, known without importing torch, so the command line can refuse a typo
(and suggest the name meant) before any heavy import. ``tests/cli`` checks that these are exactly
the architectures ``inflate3d.slowfast.archs`` registers."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

# Every registered architecture, in registration order (``inflate3d archs`` lists them so). Written
# out, not imported, so that ``--help`` and a typo cost no torch import; ``tests/test_api.py``
# checks that this is exactly ``inflate3d.slowfast.archs.all_archs()`` (ResNet zoo, X3D, Swin, ViT).
_DEPTHS = (18, 34, 50, 101, 152)
ARCH_NAMES: tuple[str, ...] = (
    *(f"i3d_r{d}" for d in _DEPTHS), "i3d_r50_8x8", "i3d_r101_8x8", "i3d_r50_nl_dot_product",
    "c2d_r50_8x8", "c2d_r50",
    *(f"slowonly_r{d}" for d in _DEPTHS),
    "r3d_18", "mc3_18", "r2plus1d_r34", "r2plus1d_18", "ircsn_r152", "ipcsn_r152", "csn_r101", "r2plus1d_r50",
    *(f"tsm_r{d}" for d in _DEPTHS),
    "slowfast_r50_4x16", "slowfast_r50_8x8", "slowfast_r101_4x16", "slowfast_r101_8x8",
    "slowfast_r101_8x8_fk5", "slowfast_r101_16x8_50_50",
    "x3d_xs", "x3d_s", "x3d_m", "x3d_l",
    "swin3d_t", "swin3d_s", "swin3d_b",
    "timesformer_b", "timesformer_b_jointST", "timesformer_b_spaceOnly", "vivit_b")
SCHEME_NAMES: tuple[str, ...] = ("mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "torchvision3d",
                                 "torchvision_video", "torchvision", "tsm", "huggingface", "timesformer")
# What ``inflate --to`` writes: a codebase's names and container, or a Hugging Face folder (ViT family)
TARGET_NAMES: tuple[str, ...] = ("mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "huggingface")
METHOD_NAMES: tuple[str, ...] = ("mean", "center", "arp")  # arp: ViViT tubelets only
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
