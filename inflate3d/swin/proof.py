"""The static-clip proof for Video Swin: on an image repeated over T frames the inflated network
must reproduce the 2D Swin (torchvision's own implementation, given the source's weights) in every
temporal token, at the patch embedding, after every stage and after the final norm (and the logits
when the head is the 2D classifier).

This holds when the temporal tokens T/Pt fit one window (it shrinks to them) or fill whole windows;
otherwise mmaction2 pads the last window with tokens that attention does not mask, and the output
moves (see ``config.exact_lengths``). Spatially, the check runs at a size where no stage is smaller
than its window, so both nets partition the same windows.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..verify.boring import TOLERANCE, StageCheck, _capture, _compare

# Float32 compute against float32 weights: measured 7e-7 at the final norm; a 2% change of one
# relative-position bias table moves it by 4e-5, of one qkv kernel by 2e-3.
SWIN_TOLERANCE = {**TOLERANCE, torch.float32: 1e-5, torch.float64: 1e-5}
from ..verify.temporal import Frames
from .schemes import TORCHVISION2D, from_canonical


def build_2d(canon: Mapping[str, torch.Tensor], cfg2d: dict) -> nn.Module:
    """torchvision's 2D SwinTransformer holding the canonical 2D weights (its index buffers are
    its own), eval mode, float32."""
    from torchvision.models.swin_transformer import SwinTransformer

    num_classes = cfg2d["num_classes"] or 1000
    with torch.random.fork_rng(devices=[]):
        net = SwinTransformer(list(cfg2d["patch"]), cfg2d["embed_dims"], list(cfg2d["depths"]),
                              list(cfg2d["num_heads"]), list(cfg2d["window"]), mlp_ratio=cfg2d["mlp_ratio"],
                              num_classes=num_classes)
    state = from_canonical({k: v.float() for k, v in canon.items()}, TORCHVISION2D)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("relative_position_index") and not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(f"2D source does not fit torchvision's Swin: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net.eval()


def min_size(patch: int, window: int, stages: int) -> int:
    """The smallest square image whose every stage is at least one window wide."""
    return patch * window * 2 ** (stages - 1)


def static_clip_check(model: nn.Module, net2d: nn.Module, *, frames: int, size: int, seed: int = 0,
                      dtype: torch.dtype = torch.float32, compare_logits: bool = False) -> list[StageCheck]:
    """Per-stage comparison over every temporal token (float32 compute)."""
    model = model.float().eval()
    backbone = model.backbone
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    clip = image.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()
    stages = len(backbone.layers)
    taps3d = {"patch_embed": backbone.patch_embed, **{f"layers.{i}": backbone.layers[i] for i in range(stages)},
              f"norm{stages - 1}": backbone.out_norm}
    taps2d = {"patch_embed": net2d.features[0], **{f"layers.{i}": net2d.features[2 * i + 1] for i in range(stages)},
              f"norm{stages - 1}": net2d.norm}
    got3d, h3 = _capture(taps3d)
    got2d, h2 = _capture(taps2d)
    try:
        with torch.inference_mode():
            feats = backbone(clip)
            logits2d = net2d(image)
    finally:
        for h in h3 + h2:
            h.remove()
    tol = SWIN_TOLERANCE.get(dtype, 1e-5)
    checks = []
    for name in taps3d:
        a3 = got3d[name]
        if name == "patch_embed":
            a3 = a3.permute(0, 2, 3, 4, 1)  # (B, C, D, H, W) -> (B, D, H, W, C)
        a2 = got2d[name].unsqueeze(1).expand_as(a3)
        checks.append(_compare(name, Frames(a3.shape[1], 0, a3.shape[1] - 1), a3, a2, tol))
    if compare_logits and model.cls_head is not None:
        with torch.inference_mode():
            logits3d = model.cls_head.fc_cls(model.cls_head.pool(feats).flatten(1))
        checks.append(_compare("logits", None, logits3d, logits2d, tol))
    return checks


def final_error(model: nn.Module, net2d: nn.Module, *, frames: int, size: int, seed: int = 0) -> float:
    """Max relative error of the final features at ``frames`` (for the warning at inexact lengths)."""
    return static_clip_check(model, net2d, frames=frames, size=size, seed=seed)[-1].max_rel
