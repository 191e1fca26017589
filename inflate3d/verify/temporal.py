"""Which output frames of a 3D ResNet see no temporal zero padding, computed from the architecture.

A static ("boring") video makes every frame equal. A conv whose temporal taps sum to the 2D kernel
(``mean`` inflation) then reproduces the 2D output exactly, except in frames whose receptive field
reaches past the clip ends, where the zero padding replaces real frames. Propagating the interval
of "clean" frames through every temporal op (kernel k, stride s, padding p) gives, per stage,
exactly which frames must match. With ``center`` inflation only the centre tap is non-zero, so
padding never matters and every frame is clean.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..slowfast.blocks import BasicBlock3d, Bottleneck3d
from ..slowfast.resnet3d import ResNet3d


@dataclass(frozen=True)
class Frames:
    length: int  # frames in the feature map
    lo: int  # first clean frame
    hi: int  # last clean frame (hi < lo: none)

    @property
    def clean(self) -> int:
        return max(0, self.hi - self.lo + 1)

    def through(self, k: int, s: int, p: int, *, padding_matters: bool = True) -> "Frames":
        """The frames after a temporal op. Output j reads inputs j*s - p ... j*s - p + k - 1."""
        length = (self.length + 2 * p - k) // s + 1
        if not padding_matters:  # centre-tap kernels read only input j*s - p + p = j*s
            lo, hi = -(-self.lo // s), self.hi // s
        else:
            lo, hi = -(-(self.lo + p) // s), (self.hi + p - k + 1) // s
        return Frames(length, max(lo, 0), min(hi, length - 1))

    def meet(self, other: "Frames") -> "Frames":
        if other.length != self.length:
            raise ValueError(f"branches disagree on length: {self.length} vs {other.length}")
        return Frames(self.length, max(self.lo, other.lo), min(self.hi, other.hi))


def _conv(frames: Frames, conv: nn.Module, padding_matters: bool) -> Frames:
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return frames.through(k, s, p, padding_matters=padding_matters and k > 1)


def stage_frames(net: ResNet3d, frames_in: int, *, method: str, use_pool2: bool) -> dict[str, Frames]:
    """{'stem': ..., 'layer1': ..., ...}: the clean frames after the stem conv and each stage of
    ``net`` (a ResNet3d or a SlowFast pathway) for a clip of ``frames_in`` frames.

    ``use_pool2`` says whether the forward that runs applies pool2 after layer1 (ResNet3d does
    when ``with_pool2``; the SlowFast forward never does).
    """
    mean = method == "mean"
    f = Frames(frames_in, 0, frames_in - 1)
    f = _conv(f, net.conv1.conv, mean)
    out = {"stem": f}
    if net.with_pool1:
        f = f.through(net.maxpool.kernel_size[0], net.maxpool.stride[0], net.maxpool.padding[0])
    for i, name in enumerate(net.res_layers):
        for block in getattr(net, name):
            f = _block(f, block, mean)
        out[name] = f
        if i == 0 and use_pool2:
            f = f.through(2, 2, 0)
    return out


def _block(f: Frames, block: nn.Module, mean: bool) -> Frames:
    convs = [block.conv1, block.conv2] + ([block.conv3] if isinstance(block, Bottleneck3d) else [])
    assert isinstance(block, (BasicBlock3d, Bottleneck3d))
    branch = f
    for unit in convs:
        branch = _conv(branch, unit.conv, mean)
    shortcut = f if block.downsample is None else _conv(f, block.downsample.conv, mean)
    return branch.meet(shortcut)


def tsm_stage_frames(net, frames_in: int) -> dict[str, Frames]:
    """Clean frames of a TSM net on a static clip: the stem is per frame; each shifted block lets
    the zeros shifted in at the clip ends reach one frame further, so after r shifted blocks the
    frames r .. T-1-r still equal the 2D net's."""
    out = {"stem": Frames(frames_in, 0, frames_in - 1)}
    radius = 0
    for name, shifted in zip(net.res_layers, net.shifted_blocks()):
        radius += shifted
        out[name] = Frames(frames_in, radius, frames_in - 1 - radius)
    return out


def shortest_clip(net: ResNet3d, *, method: str, use_pool2: bool, min_clean: int = 2,
                  multiple: int = 1, limit: int = 4096) -> int:
    """The fewest input frames (a multiple of ``multiple``) for which every stage keeps at least
    ``min_clean`` clean frames."""
    for t in range(multiple, limit + 1, multiple):
        try:
            stages = stage_frames(net, t, method=method, use_pool2=use_pool2)
        except ValueError:
            continue
        if all(s.length >= 1 and s.clean >= min_clean for s in stages.values()):
            return t
    raise ValueError(f"no clip of up to {limit} frames leaves {min_clean} clean frames")
