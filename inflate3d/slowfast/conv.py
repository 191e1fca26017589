"""Conv + BN (+ ReLU) units whose children are named ``conv`` and ``bn``.

mmaction2 wraps every convolution in an mmcv ``ConvModule``; its state-dict keys therefore read
``layer1.0.conv1.conv.weight`` and ``layer1.0.conv1.bn.running_mean``. These units reproduce that
naming (and parameter order) without depending on mmcv.
"""
from __future__ import annotations

import torch
from torch import nn

Triple = tuple[int, int, int]


def triple(value: int | tuple[int, ...]) -> Triple:
    """Expand an int to a (t, h, w) triple; pass triples through."""
    if isinstance(value, int):
        return (value, value, value)
    if len(value) != 3:
        raise ValueError(f"expected an int or 3 values, got {value!r}")
    return tuple(int(v) for v in value)  # type: ignore[return-value]


class ConvBN3d(nn.Module):
    """``Conv3d`` (no bias) -> optional ``BatchNorm3d`` -> optional ReLU.

    ``norm=False`` drops the BN (mmaction2's laterals without ``lateral_norm``); ``act=False``
    drops the ReLU (the last conv of a residual branch, downsample shortcuts); ``groups`` makes
    it channel-wise (X3D).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0,
                 dilation=1, groups: int = 1, norm: bool = True, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, triple(kernel_size), stride=triple(stride),
                              padding=triple(padding), dilation=triple(dilation), groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm3d(out_channels) if norm else None
        self.relu = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class DeConvBN3d(nn.Module):
    """``ConvTranspose3d`` -> BN -> ReLU: the time-upsampling lateral (mmaction2 ``lateral_inv``).

    The output size is pinned to ``stride * input`` so odd kernels still upsample exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1,
                 padding=0) -> None:
        super().__init__()
        self.stride = triple(stride)
        self.conv = nn.ConvTranspose3d(in_channels, out_channels, triple(kernel_size),
                                       stride=self.stride, padding=triple(padding), bias=False)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, h, w = x.shape
        size = (t * self.stride[0], h * self.stride[1], w * self.stride[2])
        return self.relu(self.bn(self.conv(x, output_size=size)))
