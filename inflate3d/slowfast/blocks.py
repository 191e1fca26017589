"""Residual blocks of the 3D ResNet, each knowing its own kernel and stride rule.

``inflate`` decides whether a block has a temporal kernel: BasicBlock3d then uses 3x3x3 for both
convs; Bottleneck3d puts it on conv1 (``inflate_style='3x1x1'``, I3D/SlowFast) or conv2
(``'3x3x3'``). ``style`` places the stride: 'pytorch' on the 3x3 conv (torchvision ResNet v1.5),
'caffe' on the first 1x1 conv.
"""
from __future__ import annotations

import torch
from torch import nn

from .conv import ConvBN3d

STYLES = ("pytorch", "caffe")
INFLATE_STYLES = ("3x1x1", "3x3x3")


class BasicBlock3d(nn.Module):
    """Two 3x3 convs; with ``inflate`` both become 3x3x3."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, *, spatial_stride: int = 1,
                 temporal_stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None,
                 style: str = "pytorch", inflate: bool = True, inflate_style: str = "3x1x1") -> None:
        super().__init__()
        _check_style(style, inflate_style)
        kt = 3 if inflate else 1
        self.conv1 = ConvBN3d(inplanes, planes, (kt, 3, 3),
                              stride=(temporal_stride, spatial_stride, spatial_stride),
                              padding=(kt // 2, dilation, dilation), dilation=(1, dilation, dilation))
        self.conv2 = ConvBN3d(planes, planes * self.expansion, (kt, 3, 3), padding=(kt // 2, 1, 1),
                              act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.non_local_block: nn.Module | None = None  # set by the network where one follows the block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv2(self.conv1(x)) + identity)
        return out if self.non_local_block is None else self.non_local_block(out)

    def last_bn(self) -> nn.BatchNorm3d:
        return self.conv2.bn


class Bottleneck3d(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels); the temporal kernel sits on conv1 or conv2."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, spatial_stride: int = 1,
                 temporal_stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None,
                 style: str = "pytorch", inflate: bool = True, inflate_style: str = "3x1x1") -> None:
        super().__init__()
        _check_style(style, inflate_style)
        if style == "pytorch":
            stride1, stride2 = (1, 1, 1), (temporal_stride, spatial_stride, spatial_stride)
        else:
            stride1, stride2 = (temporal_stride, spatial_stride, spatial_stride), (1, 1, 1)
        kt1 = 3 if inflate and inflate_style == "3x1x1" else 1
        kt2 = 3 if inflate and inflate_style == "3x3x3" else 1
        self.conv1 = ConvBN3d(inplanes, planes, (kt1, 1, 1), stride=stride1, padding=(kt1 // 2, 0, 0))
        self.conv2 = ConvBN3d(planes, planes, (kt2, 3, 3), stride=stride2,
                              padding=(kt2 // 2, dilation, dilation), dilation=(1, dilation, dilation))
        self.conv3 = ConvBN3d(planes, planes * self.expansion, 1, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.non_local_block: nn.Module | None = None  # set by the network where one follows the block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)
        return out if self.non_local_block is None else self.non_local_block(out)

    def last_bn(self) -> nn.BatchNorm3d:
        return self.conv3.bn


def _check_style(style: str, inflate_style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if inflate_style not in INFLATE_STYLES:
        raise ValueError(f"inflate_style must be one of {INFLATE_STYLES}, got {inflate_style!r}")
