"""Swin 2D -> 3D inflation as mmaction2's ``SwinTransformer3D.inflate_weights`` does it, bit for
bit, planned on a meta-device network before any tensor moves.

What each 3D tensor is made of:
- ``patch_embed.proj.weight``: the 2D kernel over Pt taps (``mean``: w/Pt on each, ``center``).
- ``relative_position_bias_table``: the 2D table, bicubic-resized on its (2Wh-1)x(2Ww-1) grid when
  the 2D window differs, then repeated 2Wd-1 times along dim 0 (the bias ignores temporal offsets).
- ``relative_position_index``: rebuilt for the 3D window (never copied); the attention mask is
  computed in the forward pass.
- the final ``norm`` -> ``norm{last}`` (``norm3``); the 2D ``head`` -> ``cls_head.fc_cls`` with
  ``--head imagenet``; everything else copied by name.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.nn import functional as F

from ..errors import Inflate3dError
from ..inflate.kernels import inflate_kernel
from ..inflate.mapping import COPY, FRESH, INFLATE, Entry, Plan
from .config import config_2d  # noqa: F401 (its home was here)
from .network import relative_position_index

TABLE = "bias table repeated"
TABLE_RESIZED = "bias table resized, repeated"
REBUILT = "rebuilt"
ACTIONS = (INFLATE, TABLE, TABLE_RESIZED, COPY, REBUILT, FRESH)


def inflate_bias_table(table2d: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """(2Wh'-1)(2Ww'-1) x heads -> (2Wd-1)(2Wh-1)(2Ww-1) x heads, mmaction2's exact operations:
    a bicubic resize (square 2D grid, as mmaction2 assumes) when the 2D window differs, then
    ``repeat(2Wd - 1, 1)``."""
    wd, wh, ww = window
    l1, heads = table2d.shape
    l2 = (2 * wh - 1) * (2 * ww - 1)
    if l1 != l2:
        s1 = int(l1 ** 0.5)
        resized = F.interpolate(table2d.permute(1, 0).view(1, heads, s1, s1),
                                size=(2 * wh - 1, 2 * ww - 1), mode="bicubic")
        table2d = resized.view(heads, l2).permute(1, 0)
    return table2d.repeat(2 * wd - 1, 1)


def check_fits(cfg2d: dict[str, Any], backbone: Mapping[str, Any], arch_name: str, origin: str) -> list[str]:
    """Refuse what cannot inflate (with the reason); return notes on what is adapted."""
    wanted = dict(embed_dims=backbone["embed_dims"], depths=tuple(backbone["depths"]))
    got = dict(embed_dims=cfg2d["embed_dims"], depths=cfg2d["depths"])
    if wanted != got:
        raise Inflate3dError(f"{origin}: is a 2D Swin with embed_dims {got['embed_dims']}, depths "
                             f"{got['depths']} but {arch_name} needs {wanted['embed_dims']}, {wanted['depths']}; "
                             "pick the matching arch (see `inflate3d archs`)")
    if tuple(backbone["num_heads"]) != cfg2d["num_heads"]:
        # mmaction2 logs "passing" here and still assigns the wrong-shaped table: refuse instead
        raise Inflate3dError(f"{origin}: its attention has {cfg2d['num_heads']} heads per stage but "
                             f"{arch_name} has {tuple(backbone['num_heads'])}; the bias tables cannot be "
                             "inflated across head counts (pick the arch with the same heads)")
    if tuple(backbone["patch_size"][1:]) != cfg2d["patch"]:
        raise Inflate3dError(f"{origin}: its patches are {cfg2d['patch']} but {arch_name} uses "
                             f"{tuple(backbone['patch_size'][1:])} spatially")
    if backbone.get("mlp_ratio", 4.0) != cfg2d["mlp_ratio"] or backbone.get("qkv_bias", True) != cfg2d["qkv_bias"]:
        raise Inflate3dError(f"{origin}: its MLP ratio / qkv bias ({cfg2d['mlp_ratio']}, {cfg2d['qkv_bias']}) "
                             f"differ from {arch_name}'s")
    notes = []
    if tuple(backbone["window_size"][1:]) != cfg2d["window"]:
        notes.append(f"2D window {cfg2d['window']} differs from the 3D window's {tuple(backbone['window_size'][1:])}: "
                     "relative-position bias tables are bicubic-resized (as mmaction2 does); the 3D net is then "
                     "not frame-by-frame the 2D one")
    return notes



def source_name(key: str, last: int) -> str | None:
    """The canonical 2D name a native 3D key comes from (``None``: rebuilt / no 2D counterpart)."""
    if key.endswith("relative_position_index"):
        return None
    if key.startswith("cls_head.fc_cls."):
        return "head." + key.rsplit(".", 1)[1]
    bare = key[len("backbone."):]
    if bare.startswith(f"norm{last}."):
        return "norm." + bare.rsplit(".", 1)[1]
    return bare


def plan(target: Mapping[str, tuple[int, ...]], canon: Mapping[str, torch.Tensor], *, last: int,
         head_from_2d: bool, window: tuple[int, int, int], origin: str) -> Plan:
    """Every target tensor's origin and action, checked against the 2D shapes; all problems at once."""
    entries, problems = [], []
    for key, shape in target.items():
        if key.endswith("relative_position_index"):
            entries.append(Entry(key, shape, REBUILT))
            continue
        if key.startswith("cls_head.") and not head_from_2d:
            entries.append(Entry(key, shape, FRESH))
            continue
        src = source_name(key, last)
        if src not in canon:
            problems.append(f"{src} missing (needed for {key})")
            continue
        s2 = tuple(canon[src].shape)
        if key.endswith("patch_embed.proj.weight"):
            ok, action = s2 == (shape[0], shape[1], *shape[3:]), INFLATE if shape[2] > 1 else COPY
        elif key.endswith("relative_position_bias_table"):
            resized = s2[0] != (2 * window[1] - 1) * (2 * window[2] - 1)
            ok, action = s2[1] == shape[1], TABLE_RESIZED if resized else TABLE
        else:
            ok, action = s2 == shape, COPY
        if not ok:
            problems.append(f"{src} {s2} does not fit {key} {shape}")
        else:
            entries.append(Entry(key, shape, action, src))
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise Inflate3dError(f"{origin}: cannot inflate into this architecture: {shown}")
    used = {e.source for e in entries if e.source}
    fresh = ["cls_head"] if any(e.action == FRESH for e in entries) else []
    return Plan(entries, [k for k in canon if k not in used], fresh, ACTIONS)


def inflated_tensor(e: Entry, canon: Mapping[str, torch.Tensor], *, method: str,
                    window: tuple[int, int, int]) -> torch.Tensor:
    """The tensor of one planned entry (not FRESH)."""
    if e.action == REBUILT:
        return relative_position_index(window)
    src = canon[e.source]
    if e.action == INFLATE:
        return inflate_kernel(src, e.shape[2], method)
    if e.action == COPY and len(e.shape) == 5:  # a 1-tap patch embedding
        return src.unsqueeze(2).contiguous()
    if e.action in (TABLE, TABLE_RESIZED):
        return inflate_bias_table(src, window)
    return src.contiguous()


def iter_tensors(p: Plan, canon: Mapping[str, torch.Tensor], fresh: Mapping[str, torch.Tensor], *,
                 method: str, window: tuple[int, int, int]) -> Iterator[tuple[str, torch.Tensor]]:
    for e in p.entries:
        yield e.key, fresh[e.key] if e.action == FRESH else inflated_tensor(e, canon, method=method, window=window)
