"""Non-local blocks: mmaction2's ``NonLocal3d`` (mmcv), names and maths, plus PySlowFast's order.

Both codebases put a non-local block after some residual blocks, with the same three 1x1x1
embeddings (theta, phi, g), the same pairwise functions and a conv + BN back to the block width. They
differ in one place: mmaction2 max-pools the *outputs* of phi and g (``sub_sample``); PySlowFast
pools the *input* before phi and g (``pool_first=True`` here). A max pool does not commute with a
conv, so the two networks compute different things from the same weights: a conversion between them
renames exactly but is never equivalent. PySlowFast's ``conv_out`` also has a bias (``out_bias``).
"""
from __future__ import annotations

import torch
from torch import nn

from .conv import ConvBN3d

MODES = ("embedded_gaussian", "dot_product")


class ConvBias3d(nn.Module):
    """A 1x1x1 conv with bias and no norm, named ``conv`` (mmcv ConvModule without norm)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NonLocal3d(nn.Module):
    """``x + BN(conv_out(f(theta(x), phi(x)) @ g(x)))``.

    ``mode='embedded_gaussian'``: softmax of theta.phi, divided first by sqrt(inner channels) with
    ``use_scale`` (PySlowFast's 'softmax'); ``'dot_product'``: theta.phi divided by the number of
    positions. ``sub_sample`` max-pools 1x2x2 for phi and g: after their convs (mmaction2), or before
    them with ``pool_first`` (PySlowFast).
    """

    def __init__(self, in_channels: int, *, sub_sample: bool = True, mode: str = "embedded_gaussian",
                 use_scale: bool = True, reduction: int = 2, pool_first: bool = False,
                 out_bias: bool = False) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"non-local mode must be one of {MODES}, got {mode!r}")
        self.inter_channels = max(in_channels // reduction, 1)
        self.mode, self.use_scale, self.sub_sample, self.pool_first = mode, use_scale, sub_sample, pool_first
        self.out_bias = out_bias
        inner = self.inter_channels
        self.g = ConvBias3d(in_channels, inner)
        self.conv_out = ConvBN3d(inner, in_channels, 1, act=False, bias=out_bias)
        self.theta = ConvBias3d(in_channels, inner)
        self.phi = ConvBias3d(in_channels, inner)
        if sub_sample:  # mmaction2 wraps the convs: keys g.0.conv.weight, phi.0.conv.weight
            self.g = nn.Sequential(self.g, nn.MaxPool3d((1, 2, 2)))
            self.phi = nn.Sequential(self.phi, nn.MaxPool3d((1, 2, 2)))

    def _embed(self, seq: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not self.sub_sample:
            return seq(x)
        conv, pool = seq[0], seq[1]
        return conv(pool(x)) if self.pool_first else pool(conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        theta = self.theta(x).view(n, self.inter_channels, -1).transpose(1, 2)  # N, THW, C
        phi = self._embed(self.phi, x).view(n, self.inter_channels, -1)  # N, C, thw
        g = self._embed(self.g, x).view(n, self.inter_channels, -1).transpose(1, 2)  # N, thw, C
        pairwise = torch.matmul(theta, phi)
        if self.mode == "embedded_gaussian":
            if self.use_scale:
                pairwise = pairwise / theta.shape[-1] ** 0.5
            pairwise = pairwise.softmax(dim=-1)
        else:
            pairwise = pairwise / pairwise.shape[-1]
        y = torch.matmul(pairwise, g).transpose(1, 2).reshape(n, self.inter_channels, *x.shape[2:])
        return x + self.conv_out(y)
