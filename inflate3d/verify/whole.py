"""The whole-model static-clip check of ``inflate_into``, where the model's graph is the 2D net's.

The 3D model on a static clip against the 2D network on its image, compared at the output of every
aligned layer, in the frames that no temporal padding has reached. The frames are tracked op by op
through the real forward (convs and pools by their kernel, stride, padding and non-zero taps), so
no architecture is assumed. Where the graphs differ in space (a pool the 2D net has and the model
lacks), the check says at which layer and is not applicable, rather than passing or failing.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ..inflate.into import IntoReport
from ..inflate.into.trace import meta_clone
from .boring import TOLERANCE, _compare, build_2d
from .layers import LayerCheck, clean_frames, frames_of, nonzero_taps, temporal_padding


class _CleanFrames(TorchFunctionMode):
    """For every 5-D tensor (N, C, T, H, W) of a forward on a static clip: which of its T frames
    are still exactly the 2D network's (no temporal zero padding has reached them). Other tensors
    carry one flag: computed from fully clean inputs only."""

    def __init__(self) -> None:
        super().__init__()
        self.state: dict[int, tuple[torch.Tensor, object]] = {}

    def of(self, t: torch.Tensor):
        entry = self.state.get(id(t))
        if entry is None or entry[0] is not t:
            return None
        return entry[1]

    def mark(self, t: torch.Tensor, value) -> None:
        self.state[id(t)] = (t, value)

    def _all_clean(self, t) -> bool:
        v = self.of(t)
        if isinstance(v, frozenset):
            return len(v) == t.shape[2]
        return bool(v)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        ins = [x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor) and self.of(x) is not None]
        if not ins:
            return out
        name = getattr(func, "__name__", "")
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        outs = [o for o in tree_leaves(out) if isinstance(o, torch.Tensor)]
        for o in outs:
            self.mark(o, self._rule(name, func, args, kwargs, first, o, ins))
        return out

    def _rule(self, name, func, args, kwargs, x, o, ins):
        if x is not None and x.dim() == 5 and o.dim() == 5 and isinstance(self.of(x), frozenset):
            clean, length = self.of(x), x.shape[2]
            if name == "conv3d":
                w = args[1]
                k, s, p, d = w.shape[2], _arg(args, kwargs, 3, "stride", 1), _arg(args, kwargs, 4, "padding", 0), \
                    _arg(args, kwargs, 5, "dilation", 1)
                s, d = _first(s), _first(d)
                p = temporal_padding(p if isinstance(p, str) else _first(p), k, d)
                return frozenset(clean_frames(clean, length, o.shape[2], k, s, p, d, nonzero_taps(w)))
            if name in ("max_pool3d", "max_pool3d_with_indices", "avg_pool3d"):
                k = _first(_arg(args, kwargs, 1, "kernel_size", 1))
                s = _first(_arg(args, kwargs, 2, "stride", None) or k)
                p = _first(_arg(args, kwargs, 3, "padding", 0))
                d = _first(_arg(args, kwargs, 4, "dilation", 1)) if name != "avg_pool3d" else 1
                return frozenset(clean_frames(clean, length, o.shape[2], k, s, p, d, list(range(k)),
                                        pad_value_neutral=name != "avg_pool3d"))
            if o.shape[2] == length and all(i.dim() != 5 or i.shape[2] == length for i in ins):
                sets = [self.of(i) for i in ins if i.dim() == 5]  # elementwise, BN, concat of channels
                if all(isinstance(v, frozenset) for v in sets):
                    return frozenset.intersection(*sets)
            if o.shape[2] == 1 and name in ("adaptive_avg_pool3d", "adaptive_max_pool3d", "mean"):
                return frozenset({0}) if len(clean) == length else frozenset()
            return frozenset()
        if o.dim() == 5:
            return frozenset(range(o.shape[2])) if all(self._all_clean(i) for i in ins) else frozenset()
        return all(self._all_clean(i) for i in ins)


def _arg(args, kwargs, i, name, default):
    return args[i] if len(args) > i else kwargs.get(name, default)


def _first(v):
    """The temporal entry of a kernel / stride / padding argument, as an int (or a padding string)."""
    v = v[0] if isinstance(v, (tuple, list)) else v
    return v if v is None or isinstance(v, str) else int(v)


@dataclass
class ModelCheck:
    applicable: bool
    reason: str = ""  # why not applicable
    frames_in: int = 0
    checks: list[LayerCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.applicable and bool(self.checks) and all(c.passed for c in self.checks)


def static_clip_check(model: nn.Module, report: IntoReport, net2d: nn.Module | None = None, *,
                      frames: int | None = None, size: int = 32, seed: int = 0) -> ModelCheck:
    """Run ``model`` (in float64, on copies of its tensors) on a static clip of ``frames`` x ``size`` x ``size`` and
    the 2D network on its image; compare every aligned layer's output in its clean frames.
    ``net2d``: the 2D module (default: torchvision's ResNet built from the source tensors)."""
    shape = report.input_shape
    if not (isinstance(shape, tuple) and len(shape) == 5):
        return ModelCheck(False, f"the model takes {shape}, not one clip: a 2D net has no counterpart "
                                 "for its second input")
    frames = frames or shape[2]
    net2 = net2d if net2d is not None else build_2d(report.source.tensors, report.source.depth)
    different = _spatial_mismatch(model, net2, report, (1, shape[1], frames, size, size))
    if different:
        return ModelCheck(False, different, frames)
    net3, net2 = _float64_copy(model), _float64_copy(net2)
    image = torch.randn(1, shape[1], size, size, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64)
    clip = image.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()
    mode = _CleanFrames()
    got3: dict[str, tuple[torch.Tensor, object]] = {}
    got2: dict[str, torch.Tensor] = {}

    def keep3(name):
        def hook(_m, _i, o):  # returns None: a hook's return value would replace the output
            got3.setdefault(name, (o.detach().clone(), mode.of(o)))
        return hook

    def keep2(name):
        def hook(_m, _i, o):
            got2.setdefault(name, o.detach().clone())
        return hook

    hooks = []
    for m in report.matches:
        hooks.append(net3.get_submodule(m.layer3d.name).register_forward_hook(keep3(m.layer3d.name)))
        hooks.append(net2.get_submodule(m.layer2d.name).register_forward_hook(keep2(m.layer2d.name)))
    try:
        with torch.no_grad():
            with mode:
                mode.mark(clip, frozenset(range(frames)))
                net3(clip)
            net2(image)
    finally:
        for h in hooks:
            h.remove()
    tol = TOLERANCE.get(next(model.parameters()).dtype, 1e-4)
    checks = []
    for m in report.matches:
        (y3, clean), y2 = got3[m.layer3d.name], got2[m.layer2d.name]
        if y3.dim() == 5:
            idx = sorted(clean) if isinstance(clean, frozenset) else []
            if not idx:
                continue  # every frame has seen temporal padding: nothing the maths guarantees
            a3 = y3[:, :, idx]
            c = _compare(m.layer3d.name, frames_of(idx, y3.shape[2]), a3, y2.unsqueeze(2).expand_as(a3), tol)
        elif clean is True and y3.shape == y2.shape:  # e.g. the classifier, after clean pooling
            c = _compare(m.layer3d.name, None, y3, y2, tol)
        else:
            continue
        checks.append(LayerCheck(c.name, c.frames, c.max_abs, c.max_rel, c.tol, m.layer2d.name))
    if not checks:
        return ModelCheck(False, f"no layer output keeps a frame clear of temporal padding at {frames} "
                                 "frames; pass more frames", frames)
    return ModelCheck(True, "", frames, checks)


def _float64_copy(net: nn.Module) -> nn.Module:
    """``net`` in float64 and eval mode, without touching it: a meta-device clone given float64
    copies of its tensors (one copy, not a deep copy and then a cast)."""
    clone = meta_clone(net).eval()
    tensors = itertools.chain(net.named_parameters(remove_duplicate=False), net.named_buffers(remove_duplicate=False))
    for name, t in tensors:
        module, _, attr = name.rpartition(".")
        owner = clone.get_submodule(module)
        value = t.detach().double() if t.is_floating_point() else t.detach().clone()
        if attr in owner._parameters:
            owner._parameters[attr] = nn.Parameter(value, requires_grad=False)
        else:
            owner._buffers[attr] = value
    return clone


def _spatial_mismatch(model: nn.Module, net2d: nn.Module, report: IntoReport, clip: tuple) -> str:
    """Where the 3D model's aligned layers first differ in spatial size from the 2D net's, found
    by a meta-device forward of each (no arithmetic); '' when they agree everywhere."""
    shapes: dict[str, tuple] = {}
    nets = {"3d": meta_clone(model).eval(), "2d": meta_clone(net2d).eval()}
    hooks = []
    for m in report.matches:
        for side, name in (("3d", m.layer3d.name), ("2d", m.layer2d.name)):
            hooks.append(nets[side].get_submodule(name).register_forward_hook(
                lambda _m, _i, o, key=(side, name): shapes.setdefault(key, tuple(o.shape)) and None))
    try:
        with torch.no_grad():
            nets["3d"](torch.empty(clip, device="meta"))
            nets["2d"](torch.empty((1, clip[1], *clip[3:]), device="meta"))
    finally:
        for h in hooks:
            h.remove()
    for m in report.matches:
        a, b = shapes[("3d", m.layer3d.name)], shapes[("2d", m.layer2d.name)]
        if len(a) == 5 and a[-2:] != b[-2:]:
            return (f"the graphs differ before {m.layer3d.name}: its output is {'x'.join(map(str, a[-2:]))} "
                    f"in space, {m.layer2d.name}'s {'x'.join(map(str, b[-2:]))}")
    return ""
