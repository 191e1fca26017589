"""``diff --inflated`` for Video Swin: each 3D tensor taken back to 2D by the inverse of its
inflation (patch embedding: sum over time for ``mean``, the centre tap for ``center``; bias tables:
the mean of the 2Wd-1 repeats), compared with the 2D source, and checked bit for bit against
re-inflating the 2D tensor."""
from __future__ import annotations

import re
from contextlib import ExitStack

import torch

from ..diff.inflated import InflatedDiff, InflatedTensor
from ..diff.metrics import relative_change
from ..errors import Inflate3dError
from ..inflate.kernels import deflate_kernel, kernel_method
from ..inflate.mapping import INFLATE
from ..diff.checkpoints import key_pattern, open_input
from ..io.load import load_checkpoint
from ..slowfast.archs import build_model
from .config import config_3d, match_arch
from .inflation import REBUILT, TABLE, TABLE_RESIZED, config_2d, inflated_tensor, plan
from .schemes import detect_2d, detect_3d, to_canonical


def group(key: str) -> str:
    if key.startswith("cls_head."):
        return "head"
    if m := re.match(r"backbone\.(layers\.\d+)\.", key):
        return m[1]
    return "patch_embed" if ".patch_embed." in key else "norm"


def diff_inflated(a_path, b_path, *, keys: str | None = None, trust_pickle: bool = False) -> InflatedDiff:
    """The 3D file (a path, or an open ``TensorFile``: read through, left open) is read one tensor
    at a time, never loaded whole; the 2D source is loaded, as its canonical names may need its
    tensors (Hugging Face keeps q, k and v apart)."""
    from .family import native_names

    with ExitStack() as opened:
        fa = open_input(a_path, trust_pickle, opened)
        a_path = fa.origin
        b = load_checkpoint(b_path, trust_pickle=trust_pickle).tensors
        scheme2d = detect_2d(b)
        if scheme2d is None:
            raise Inflate3dError(f"{b_path}: not a 2D Swin; give the 2D Swin {a_path} was inflated from")
        canon = to_canonical(b, scheme2d, str(b_path))
        del b
        scheme3d = detect_3d(fa.keys())
        if scheme3d is None:
            raise Inflate3dError(f"{a_path}: not a Video Swin; --inflated takes the 3D checkpoint first, then its 2D source")
        names = native_names(fa.keys(), scheme3d, str(a_path))  # native key -> the file's
        cfg = config_3d({n: fa.shape(k) for n, k in names.items()}, str(a_path))
        arch, overrides = match_arch(cfg, str(a_path))
        model = build_model(arch, num_classes=cfg["num_classes"], device="meta", init=False, **overrides)
        head_from_2d = cfg["num_classes"] is not None and cfg["num_classes"] == config_2d(canon, str(b_path))["num_classes"]
        window = tuple(cfg["window_size"])
        p = plan({k: tuple(v.shape) for k, v in model.state_dict().items()}, canon, last=model.backbone.last,
                 head_from_2d=head_from_2d, window=window, origin=str(b_path))
        result = InflatedDiff(arch.name, unused_2d=p.unused)
        for e in result.to_compare(p.entries, key_pattern(keys)):
            result.add(_compare(e, fa.get(names[e.key]), canon, window), group(e.key))  # one 3D tensor at a time
    return result.compared(a_path, b_path, keys)


def _compare(e, w3d: torch.Tensor, canon, window) -> InflatedTensor:
    if e.action == REBUILT:
        same = bool(torch.equal(w3d, inflated_tensor(e, canon, method="mean", window=window)))
        return InflatedTensor(e.key, "(rebuilt)", "rebuilt", same, 0.0 if same else float("inf"), 0.0 if same else 1.0, None)
    w2d = canon[e.source]
    if e.action == INFLATE:
        method = kernel_method(w3d)
        method = "mean" if method == "copy" else method
        back = deflate_kernel(w3d.double(), method)
    elif e.action in (TABLE, TABLE_RESIZED):
        method = "repeat" if e.action == TABLE else "resize+repeat"
        back = w3d.double().reshape(2 * window[0] - 1, -1, w3d.shape[1]).mean(dim=0)
        if e.action == TABLE_RESIZED:  # compare against the resized 2D table
            w2d = inflated_tensor(e, canon, method="mean", window=(1, *window[1:]))
    else:
        method, back = "copy", w3d
    exact = bool(torch.equal(w3d, inflated_tensor(e, canon, method=method if method in ("mean", "center") else "mean",
                                                  window=window).to(w3d.dtype)))
    max_abs = float((back.double() - w2d.double()).abs().max()) if back.numel() else 0.0
    return InflatedTensor(e.key, e.source, method, exact, max_abs, relative_change(back, w2d), None)
