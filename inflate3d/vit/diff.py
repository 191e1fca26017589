"""``diff --inflated`` for video transformers: every tensor against what its plan says it was made
of (copy, temporal copy, zero, resampled or tiled position embedding, tubelet kernel, q/k/v split),
per module: still exactly the inflation of the 2D ViT, or how far training moved it."""
from __future__ import annotations

import re
from contextlib import ExitStack

import torch

from ..diff.inflated import InflatedDiff, InflatedTensor
from ..diff.metrics import relative_change
from ..errors import Inflate3dError
from ..diff.checkpoints import key_pattern, open_input
from ..io.lazy import TensorFile
from ..slowfast.archs import state_dict_shapes
from . import inflation as inf
from .kernels import resize_pos_embed, tile_pos_embed, tubelet_method
from .vit2d import canonical


def _group(key: str) -> str:
    if key.startswith("cls_head."):
        return "head"
    m = re.search(r"(?:layers|layer)\.(\d+)\.", key)
    return f"layer{m[1]}" if m else "embedding"


def diff_inflated(a_path, b_path, *, keys: str | None = None, trust_pickle: bool = False) -> InflatedDiff:
    """The 3D file (a path, or an open ``TensorFile``: read through, left open) is read one tensor
    at a time, never loaded whole; the 2D ViT is loaded, as its canonical (timm) names may need its
    tensors (Hugging Face keeps q, k and v apart)."""
    from .family import _record, detect_scheme, infer, native_names

    with ExitStack() as opened:
        fa = open_input(a_path, trust_pickle, opened)
        a_path = fa.origin
        scheme = detect_scheme(fa.keys())
        if scheme is None or scheme.endswith("-vit"):
            raise Inflate3dError(f"{a_path}: not a TimeSformer / ViViT checkpoint")
        names = native_names(fa.keys(), scheme, str(a_path))  # native key -> the file's
        shapes = {n: torch.empty(fa.shape(k), device="meta") for n, k in names.items()}
        arch, overrides, facts = infer(shapes, _record(str(a_path), fa.metadata), str(a_path))
        with TensorFile(b_path, trust_pickle=trust_pickle) as fb:
            src, _, _ = canonical({k: fb.get(k) for k in fb.keys()}, str(b_path))
        target = state_dict_shapes(arch, num_classes=facts.num_classes, **overrides)
        head_from_2d = facts.num_classes is not None and "head.weight" in src and \
            src["head.weight"].shape[0] == facts.num_classes
        plan = inf.plan(target, {k: tuple(v.shape) for k, v in src.items()}, facts.family,
                        head_from_2d=head_from_2d, origin=str(b_path))
        result = InflatedDiff(arch.name, unused_2d=plan.unused)
        steps = facts.settings.get("num_frames", 1) // (facts.settings.get("tubelet_size") or (1,))[0]
        for e in result.to_compare(plan.entries, key_pattern(keys)):
            result.add(_compare(e, fa.get(names[e.key]), src, steps), _group(e.key))  # one 3D tensor at a time
    return result.compared(a_path, b_path, keys)


def _compare(e, w3d: torch.Tensor, src: dict, steps: int) -> InflatedTensor:
    if e.action == inf.ZERO:
        moved = float(w3d.double().norm())
        return InflatedTensor(e.key, "(zero)", "zero", not bool(w3d.any()), float(w3d.double().abs().max()),
                              moved, None)
    w2d = src[e.source]
    method = "copy"
    if e.action == inf.SPLIT:
        w2d = w2d.chunk(3, 0)[("query", "key", "value").index(e.key.split(".")[-2])]
    elif e.action == inf.RESIZED:
        w2d, method = resize_pos_embed(w2d, int((w3d.shape[1] - 1) ** 0.5)), "resized"
    elif e.action == inf.TILED:
        grid = int(((w3d.shape[1] - 1) // steps) ** 0.5)
        w2d, method = tile_pos_embed(resize_pos_embed(w2d, grid), steps), "tiled"
    elif e.action == inf.INFLATE:
        found = tubelet_method(w3d, w2d)
        method = found or "mean"
        back = w3d.double().sum(2) if method != "center" else w3d[:, :, w3d.shape[2] // 2].double()
        exact = found is not None
        return InflatedTensor(e.key, e.source, method, exact, float((back - w2d.double()).abs().max()),
                              0.0 if exact else relative_change(back, w2d), None)
    exact = bool(torch.equal(w3d, w2d.to(w3d.dtype)))
    max_abs = float((w3d.double() - w2d.double()).abs().max()) if w3d.numel() else 0.0
    return InflatedTensor(e.key, e.source, method, exact, max_abs, relative_change(w3d, w2d), None)
