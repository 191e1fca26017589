"""A Video Swin's settings read off its native state-dict shapes, and the named arch they match; a
2D Swin's, off its canonical shapes. Shapes only: torch-free (``inspect`` describes from shape records)."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import Inflate3dError
from ..slowfast.archs import ARCHS, Arch
from .archs import FAMILY

SETTINGS = ("embed_dims", "depths", "num_heads", "patch_size", "window_size", "mlp_ratio", "qkv_bias")


def config_3d(shapes: Mapping[str, tuple[int, ...]], origin: str) -> dict[str, Any]:
    """embed_dims, depths, num_heads, patch_size, window_size, mlp_ratio, qkv_bias and num_classes
    from native (recognizer) key -> shape."""
    try:
        dim, _, *patch = shapes["backbone.patch_embed.proj.weight"]
        depths, heads = [], []
        for i in range(8):
            blocks = {int(m[1]) for k in shapes if (m := re.match(rf"backbone\.layers\.{i}\.blocks\.(\d+)\.", k))}
            if not blocks:
                break
            depths.append(len(blocks))
            heads.append(shapes[f"backbone.layers.{i}.blocks.0.attn.relative_position_bias_table"][1])
        table = shapes["backbone.layers.0.blocks.0.attn.relative_position_bias_table"][0]
        n = shapes["backbone.layers.0.blocks.0.attn.relative_position_index"][0]
        mlp = shapes["backbone.layers.0.blocks.0.mlp.fc1.weight"][0] / dim
    except KeyError as e:
        raise Inflate3dError(f"{origin}: not a Video Swin checkpoint ({e.args[0]} missing)") from None
    return dict(embed_dims=dim, depths=tuple(depths), num_heads=tuple(heads), patch_size=tuple(patch),
                window_size=window_from(n, table, origin), mlp_ratio=mlp,
                qkv_bias="backbone.layers.0.blocks.0.attn.qkv.bias" in shapes,
                num_classes=shapes["cls_head.fc_cls.weight"][0] if "cls_head.fc_cls.weight" in shapes else None)


def window_from(tokens: int, table: int, origin: str) -> tuple[int, int, int]:
    """(Wd, W, W) with Wd*W*W == tokens and (2Wd-1)(2W-1)^2 == table rows (square spatial windows)."""
    for wd in range(1, tokens + 1):
        if tokens % wd == 0:
            w = math.isqrt(tokens // wd)
            if wd * w * w == tokens and (2 * wd - 1) * (2 * w - 1) ** 2 == table:
                return wd, w, w
    raise Inflate3dError(f"{origin}: relative_position_index ({tokens} tokens) and bias table ({table} rows) "
                         "fit no window Wd x W x W")


def match_arch(cfg: Mapping[str, Any], origin: str, name: str | None = None) -> tuple[Arch, dict[str, Any]]:
    """The named Swin arch needing the fewest overrides (only ``name`` when given)."""
    candidates = [a for a in ARCHS.values() if a.family == FAMILY and (name is None or a.name == name)]
    if not candidates:
        raise Inflate3dError(f"--arch {name}: not a Video Swin architecture; see `inflate3d archs`")

    def overrides(a: Arch) -> dict[str, Any]:
        return {k: cfg[k] for k in SETTINGS if tuple_or(a.backbone.get(k)) != tuple_or(cfg[k])}

    best = min(candidates, key=lambda a: len(overrides(a)))
    return best, overrides(best)


def tuple_or(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def exact_lengths(patch_t: int, window_t: int, upto: int = 64) -> list[int]:
    """Clip lengths at which a static clip reproduces the 2D net frame by frame: the temporal tokens
    (T / Pt, T a multiple of Pt) fit one window (the window shrinks to them) or fill whole windows.
    Elsewhere mmaction2 pads the last window with tokens it does not mask."""
    return [t for t in range(patch_t, upto + 1, patch_t)
            if (t // patch_t) <= window_t or (t // patch_t) % window_t == 0]


def is_exact(frames: int, patch_t: int, window_t: int) -> bool:
    return frames % patch_t == 0 and frames > 0 and \
        ((frames // patch_t) <= window_t or (frames // patch_t) % window_t == 0)


def config_2d(canon: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Backbone settings read off a canonical 2D Swin (shapes only)."""
    shape = lambda k: tuple(canon[k].shape)  # noqa: E731
    if "patch_embed.proj.weight" not in canon:
        raise Inflate3dError(f"{origin}: no patch embedding (patch_embed.proj.weight); not a Swin")
    dim, _, ph, pw = shape("patch_embed.proj.weight")
    depths, heads = [], []
    for i in range(8):
        blocks = sorted({int(m[1]) for k in canon if (m := re.match(rf"layers\.{i}\.blocks\.(\d+)\.", k))})
        if not blocks:
            break
        depths.append(len(blocks))
        heads.append(shape(f"layers.{i}.blocks.0.attn.relative_position_bias_table")[1])
    side = int(round(math.sqrt(shape("layers.0.blocks.0.attn.relative_position_bias_table")[0])))
    return dict(embed_dims=dim, depths=tuple(depths), num_heads=tuple(heads), patch=(ph, pw),
                window=((side + 1) // 2, (side + 1) // 2),
                mlp_ratio=shape("layers.0.blocks.0.mlp.fc1.weight")[0] / dim,
                qkv_bias="layers.0.blocks.0.attn.qkv.bias" in canon,
                num_classes=shape("head.weight")[0] if "head.weight" in canon else None)
