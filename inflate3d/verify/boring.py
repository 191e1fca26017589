"""Boring-video equivalence: a 3D net inflated from a 2D one, run on an image repeated over time,
must reproduce the 2D net's features in every frame the maths guarantees (see ``temporal``)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..slowfast.recognizer import Recognizer3D
from ..slowfast.slowfast import ResNet3dSlowFast
from ..slowfast.tsm import ResNetTSM, TemporalShift
from .reference2d import ResNet2d
from .temporal import Frames, shortest_clip, stage_frames, tsm_stage_frames

# Relative tolerance (max |3D - 2D| / max |2D|) by the checkpoint's storage dtype. ``mean`` stores
# w / T rounded to that dtype; measured in float64 compute that rounding reaches 5e-6 at the
# output of I3D-R152 for float32 checkpoints. A corrupted tensor gives errors of order 1.
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9, torch.float16: 2e-2, torch.bfloat16: 8e-2}
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


@dataclass(frozen=True)
class StageCheck:
    name: str
    frames: Frames | None  # None for the logits
    max_abs: float
    max_rel: float
    tol: float

    @property
    def passed(self) -> bool:
        return self.max_rel <= self.tol  # NaN fails too


def build_2d(tensors: Mapping[str, torch.Tensor], depth: int) -> nn.Module:
    """The 2D ResNet the 3D net was inflated from (torchvision's architecture), eval mode. Built on
    the meta device and given the source's tensors, so no weight is initialised for nothing."""
    num_classes = int(tensors["fc.weight"].shape[0]) if "fc.weight" in tensors else 1000
    with torch.device("meta"):
        net = ResNet2d(depth, num_classes=num_classes)
    expected = net.state_dict()
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items() if k in expected}
    missing = [k for k in expected if k not in state and not k.startswith("fc.")]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise ValueError(f"2D source does not fit a ResNet-{depth}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    for k in expected:  # a source without a classifier: a zero fc (logits are then not compared)
        state.setdefault(k, torch.zeros(expected[k].shape))
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval()


def _capture(modules: Mapping[str, nn.Module]):
    out: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, o, n=n: out.__setitem__(n, o.detach().clone()))
               for n, m in modules.items()]
    return out, handles


def width_mismatch(model: Recognizer3D, net2d: nn.Module) -> str | None:
    """Where ``model`` (its slow pathway, for SlowFast) is not as wide as ``net2d``: the first
    stage whose output channels differ, said in words; None when every stage matches. Such a pair
    is no inflation, and their features cannot be compared."""
    backbone = model.backbone
    path = backbone.slow_path if isinstance(backbone, ResNet3dSlowFast) else backbone
    pairs = [("stem", path.conv1, net2d.conv1), *((n, getattr(path, n), getattr(net2d, n)) for n in path.res_layers)]
    for name, m3, m2 in pairs:
        c3, c2 = _out_channels(m3), _out_channels(m2)
        if c3 != c2:
            return f"its {name} has {c3} output channels where the 2D source's has {c2}"
    return None


def _out_channels(module: nn.Module) -> int | None:
    convs = [m for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    return convs[-1].out_channels if convs else None


def boring_video_check(model: Recognizer3D, net2d: nn.Module, *, method: str,
                       compute: torch.dtype = torch.float64, dtype: torch.dtype = torch.float32,
                       size: int = 32, seed: int = 0,
                       compare_logits: bool = False) -> list[StageCheck]:
    """Per-stage (and optionally logit) comparison of ``model`` on a static clip with ``net2d`` on
    its frame. Both run in ``compute`` precision (float64: the arithmetic's own noise then sits
    far below the tolerance, so what is measured is the checkpoint), in eval mode. ``dtype`` is
    the checkpoint's storage dtype, which sets the tolerance."""
    model = model.to(compute).eval()
    net2d = net2d.to(compute)
    backbone = model.backbone
    slowfast = isinstance(backbone, ResNet3dSlowFast)
    path = backbone.slow_path if slowfast else backbone
    if isinstance(backbone, ResNetTSM):
        if backbone.temporal_pool:
            raise ValueError("boring-video verification of TSM supports temporal_pool=False only")
        t = 2 * sum(backbone.shifted_blocks()) + 2
        frames = tsm_stage_frames(backbone, t)
        for m in backbone.modules():  # segments are a run-time setting: the clip is one video of t
            if isinstance(m, TemporalShift):
                m.num_segments = t
    else:
        use_pool2 = not slowfast and path.with_pool2
        t = shortest_clip(path, method=method, use_pool2=use_pool2)
        frames = stage_frames(path, t, method=method, use_pool2=use_pool2)
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(compute)
    clip = image.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()
    inputs = (clip, image.unsqueeze(2).expand(-1, -1, t * backbone.speed_ratio, -1, -1).contiguous()) \
        if slowfast else clip

    got3d, h3 = _capture({"stem": path.conv1, **{n: getattr(path, n) for n in path.res_layers}})
    got2d, h2 = _capture({"stem": net2d.relu, **{n: getattr(net2d, n) for n in path.res_layers}})
    try:
        with torch.inference_mode():
            feats = backbone(inputs)
            logits2d = net2d(image)
    finally:
        for h in h3 + h2:
            h.remove()
    tol = TOLERANCE.get(dtype, 1e-4)
    checks = []
    for name in STAGES[: 1 + len(path.res_layers)]:
        f = frames[name]
        if isinstance(backbone, ResNetTSM):  # frames are batch entries: (T, C, H, W)
            a3 = got3d[name][f.lo: f.hi + 1]
            a2 = got2d[name].expand_as(a3)
        else:
            a3 = got3d[name][:, :, f.lo: f.hi + 1]
            a2 = got2d[name].unsqueeze(2).expand_as(a3)
        checks.append(_compare(name, f, a3, a2, tol))
    if compare_logits and model.cls_head is not None:
        checks.append(_compare("logits", None, _clean_logits(model, feats, frames), logits2d, tol))
    return checks


def _clean_logits(model: Recognizer3D, feats, frames: dict[str, Frames]) -> torch.Tensor:
    """The head applied to the clean frames of the last stage (all frames with ``center``)."""
    head = model.cls_head
    last = frames[list(frames)[-1]]
    with torch.inference_mode():
        if isinstance(model.backbone, ResNetTSM):  # per-frame scores of the clean frames, averaged
            frames_scores = head.fc_cls(head.pool(feats[last.lo: last.hi + 1]).flatten(1))
            return frames_scores.mean(dim=0, keepdim=True)
        if isinstance(feats, tuple):
            slow, fast = feats
            pooled = torch.cat((head.pool(fast), head.pool(slow[:, :, last.lo: last.hi + 1])), dim=1)
        else:
            pooled = head.pool(feats[:, :, last.lo: last.hi + 1])
        return head.fc_cls(pooled.flatten(1))


def _compare(name: str, frames: Frames | None, a: torch.Tensor, b: torch.Tensor, tol: float) -> StageCheck:
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    if not torch.isfinite(a).all():
        diff = rel = float("nan")
    return StageCheck(name, frames, diff, rel, tol)
