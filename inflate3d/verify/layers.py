"""The proof of ``inflate_into``, layer by layer.

Every aligned conv, run on a static clip (one random image repeated over time, with random
values in the zero-padded lateral channels too), must give the 2D conv's response on that image
in every output frame whose taps read no temporal padding (``center``: every frame, since only
the centre tap is non-zero). The whole-model check is :mod:`inflate3d.verify.whole`.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..inflate.into import IntoReport
from .boring import TOLERANCE, StageCheck, _compare
from .temporal import Frames


@dataclass(frozen=True)
class LayerCheck(StageCheck):
    source: str = ""  # the 2D layer


def temporal_padding(p, k: int, d: int) -> int:
    if p == "same":
        return d * (k - 1) // 2
    return 0 if p == "valid" else int(p)


def clean_frames(t_in: set[int] | range, length: int, t_out: int, k: int, s: int, p: int, d: int,
           taps: list[int], pad_value_neutral: bool = False) -> list[int]:
    """Output frames whose non-zero taps read only clean input frames. Reads outside the clip hit
    the temporal padding: not clean, unless the padding cannot change the result (max pooling)."""
    out = []
    for j in range(t_out):
        reads = [j * s - p + d * i for i in taps]
        inside = [r for r in reads if 0 <= r < length]
        if (pad_value_neutral or len(inside) == len(reads)) and inside and all(r in t_in for r in inside):
            out.append(j)
    return out


def nonzero_taps(w: torch.Tensor) -> list[int]:
    """The temporal taps of a 3D kernel (O, I, T, kH, kW) with any non-zero weight."""
    return torch.amax(w.detach().abs(), dim=(0, 1, 3, 4)).nonzero().flatten().tolist() or [0]


def frames_of(clean: list[int], length: int) -> Frames:
    return Frames(length, clean[0], clean[-1]) if clean else Frames(length, 0, -1)


def prove_layers(model: nn.Module, report: IntoReport, *, layers: Collection[str] | None = None,
                 seed: int = 0) -> list[LayerCheck]:
    """One check per aligned conv of ``model`` (after ``inflate_into``) against its 2D source
    (``layers``: only these model layers)."""
    checks = []
    gen = torch.Generator().manual_seed(seed)
    for m in report.matches:
        if m.layer3d.kind != "conv" or (layers is not None and m.layer3d.name not in layers):
            continue
        conv3 = model.get_submodule(m.layer3d.name)
        b = m.layer2d
        w2 = report.source.tensors[f"{b.name}.weight"].double()
        b2 = report.source.tensors.get(f"{b.name}.bias")
        w3 = conv3.weight.detach().double()
        b3 = conv3.bias.detach().double() if conv3.bias is not None else None
        # the smallest image whose output has a border and an interior pixel: every spatial tap is
        # exercised, and the proof of a 2048-channel layer stays a fraction of a second
        size = max(d * (k - 1) for k, d in zip(b.kernel, b.dilation)) + max(b.stride) + 1
        image = torch.randn(1, conv3.in_channels, size, size, generator=gen, dtype=torch.float64)
        y2 = F.conv2d(image[:, : w2.shape[1] * b.groups], w2, None if b2 is None else b2.double(),
                      b.stride, b.padding, b.dilation, b.groups)
        tol = TOLERANCE.get(conv3.weight.dtype, 1e-4)
        if w3.dim() == 4:  # a 2D conv inside the 3D model
            y3 = F.conv2d(image, w3, b3, conv3.stride, conv3.padding, conv3.dilation, conv3.groups)
            checks.append(_layer_check(m, None, y3.unsqueeze(2), y2, tol))
            continue
        k, s, d = int(conv3.kernel_size[0]), int(conv3.stride[0]), int(conv3.dilation[0])  # numpy ints too
        p = temporal_padding(conv3.padding if isinstance(conv3.padding, str) else conv3.padding[0], k, d)
        taps = [(k - 1) // 2] if report.method == "center" else list(range(k))
        for t in range(1, 64):  # the shortest clip with two frames clear of the padding
            t_out = (t + 2 * p - d * (k - 1) - 1) // s + 1
            clean = clean_frames(range(t), t, t_out, k, s, p, d, taps) if t_out > 0 else []
            if len(clean) >= 2:
                break
        clip = image.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()
        if conv3.padding_mode != "zeros":
            y3 = conv3._conv_forward(clip, w3, b3)
        else:
            y3 = F.conv3d(clip, w3, b3, conv3.stride, conv3.padding, conv3.dilation, conv3.groups)
        checks.append(_layer_check(m, frames_of(clean, t_out), y3, y2, tol, clean))
    return checks


def _layer_check(m, frames: Frames | None, y3: torch.Tensor, y2: torch.Tensor, tol: float,
                 clean: list[int] | None = None) -> LayerCheck:
    a3 = y3[:, :, clean] if clean is not None else y3[:, :, 0]
    if clean is not None:
        y2 = y2.unsqueeze(2).expand_as(a3) if a3.shape[-2:] == y2.shape[-2:] else y2
    if a3.shape[-2:] != y2.shape[-2:]:  # other spatial geometry: cannot equal the 2D layer
        return LayerCheck(m.layer3d.name, frames, float("inf"), float("inf"), tol, m.layer2d.name)
    c = _compare(m.layer3d.name, frames, a3, y2, tol)
    return LayerCheck(c.name, c.frames, c.max_abs, c.max_rel, c.tol, m.layer2d.name)
