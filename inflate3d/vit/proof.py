"""Static-clip proofs for the video transformers, run on the bytes that were written.

An image repeated over T frames ("a static clip") must give, in float64:

- TimeSformer, divided space-time and space-only: the ViT's tokens after the embedding and after
  every layer, in every frame, and the ViT's class token at the output (exact by construction:
  ``temporal_fc`` and ``time_embed`` are zero, and the per-frame class-token updates are averaged).
- TimeSformer joint space-time and ViViT: only the embedding is exact. Joint attention lets each
  query see T copies of every patch token but the class token once, which re-weights the softmax,
  so the transformer's output is NOT the ViT's: not proven, and said so.
- ViViT ``mean`` / ``center``: the tubelet embedding plus position of a static clip equals the ViT's
  patch embedding plus position at every tubelet step. ``arp``: its weights sum to zero over time,
  so the check is the kernel itself (slot j = w * a_j / t).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..slowfast.archs import Arch, build_model
from ..verify import StageCheck, Verification, strict_load
from ..verify.temporal import Frames
from .kernels import resize_pos_embed, tubelet_weights
from .vit2d import ViT2d

TOLERANCE = 1e-5  # relative (max |3D - 2D| / max |2D|), computed in float64


def _check(name: str, got: torch.Tensor, want: torch.Tensor, frames: Frames | None) -> StageCheck:
    diff = (got.double() - want.double()).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    scale = float(want.double().abs().max()) if want.numel() else 0.0
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if got.shape != want.shape:
        max_abs = rel = float("inf")
    return StageCheck(name, frames, max_abs, rel, TOLERANCE)


def verify_vit(tensors, arch: Arch, source, *, method: str, overrides: dict, origin: str,
               seed: int = 0) -> Verification:
    """Strict load of ``tensors`` into ``arch`` (with ``overrides``), then the static-clip checks
    against ``source`` (a ``ViTSource``)."""
    head_w = tensors.get("cls_head.fc_cls.weight")
    num_classes = int(head_w.shape[0]) if head_w is not None else None
    model = build_model(arch, num_classes=num_classes, device="meta", init=False, **overrides)
    strict_load(model, dict(tensors), origin)
    result = Verification(arch.name, method)
    result.notes.append(f"strict load into {arch.name}: {len(tensors)} tensors, no missing or unexpected "
                        "keys, all shapes equal")
    model = model.double().eval()
    backbone = model.backbone
    size = backbone.img_size if arch.family == "timesformer" else backbone.image_size
    ref_tensors = {k: v.double() for k, v in source.tensors.items()}
    grid = size // source.info.patch_size
    if grid != source.info.grid:
        ref_tensors["pos_embed"] = resize_pos_embed(ref_tensors["pos_embed"], grid)
        result.notes.append(f"the ViT runs at {size}px with its position embedding resampled to the "
                            f"{grid}x{grid} grid, as the video network's was")
    ref = ViT2d(ref_tensors, replace(source.info, grid=grid))
    frames = overrides["num_frames"]
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(1, 3, size, size, generator=gen, dtype=torch.float64)
    clip = img.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()
    with torch.no_grad():
        want = ref.stages(img)
        if arch.family == "vivit":
            result.checks, notes = _vivit_checks(backbone, clip, want, img, ref, method)
        else:
            result.checks, notes = _timesformer_checks(backbone, clip, want, frames)
            if head_w is not None and source.info.num_classes == num_classes and \
                    "head.weight" in source.tensors:
                logits = torch.nn.functional.linear(want["cls"], ref.p["head.weight"], ref.p["head.bias"])
                if backbone.attention_type != "joint_space_time":
                    result.checks.append(_check("logits", model.cls_head(model.backbone(clip)), logits, None))
    result.caveats += notes
    return result


def _timesformer_checks(net, clip, want, t: int):
    got = net.stages(clip)
    full = Frames(t, 0, t - 1)
    depth = len(net.transformer_layers.layers)
    names = ["embedding"] + [f"layer{i}" for i in range(depth)]
    if net.attention_type == "joint_space_time":
        names = ["embedding"]
    checks = []
    for name in names:
        g, w = got[name], want[name]
        if net.attention_type == "space_only":  # (T, 1 + P, D): each frame is one image
            checks.append(_check(name, g, w.expand_as(g), full))
            continue
        p = w.shape[1] - 1
        tokens = g[:, 1:].reshape(1, p, t, -1).transpose(1, 2)  # (1, T, P, D)
        g_all = torch.cat((g[:, :1].expand(t, -1, -1), tokens[0]), 1)
        checks.append(_check(name, g_all, w.expand(t, -1, -1), full))
    notes = []
    if net.attention_type == "joint_space_time":
        notes.append("NOT proven: joint space-time attention on a static clip is not the 2D computation "
                     "(each query sees T copies of every patch but one class token); only the embedding is "
                     "checked")
    else:
        checks.append(_check("class token", got["cls"], want["cls"], None))
    return checks, notes


def _vivit_checks(net, clip, want, img, ref, method: str):
    e = net.embeddings
    tt = net.tubelet_size[0]
    steps = clip.shape[2] // tt
    notes = ["NOT proven: joint space-time attention (ViViT) on a static clip is not the 2D computation "
             "(each query sees every patch once per tubelet step but the class token once); only the "
             "embedding is checked"]
    w2d = ref.p["patch_embed.proj.weight"]
    if method == "arp":
        kernel = e.patch_embeddings.projection.weight
        factors = tubelet_weights(tt, "arp")
        want_k = torch.stack([w2d * f for f in factors], 2)
        notes.append("arp: the tubelet weights sum to zero over time, so a static clip embeds to the bias; "
                     "checked instead: every temporal slot is w * a_j / t")
        checks = [_check("tubelet kernel", kernel, want_k, Frames(tt, 0, tt - 1))]
    else:
        got = net.embed(clip)  # (1, 1 + steps * P, D), time-major
        p = want["embedding"].shape[1] - 1
        per_step = torch.cat((got[:, :1].expand(steps, -1, -1), got[0, 1:].reshape(steps, p, -1)), 1)
        checks = [_check("tubelet embedding", per_step, want["embedding"].expand(steps, -1, -1),
                         Frames(steps, 0, steps - 1))]
    return checks, notes

