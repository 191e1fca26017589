"""CSN (channel-separated networks): a 3D ResNet whose 3x3x3 convs are depthwise.

mmaction2's ``ResNet3dCSN``: in every bottleneck the 3x3x3 conv has one group per channel and sits
in a sequence (``conv2.0``); the 'ip' mode puts a 1x1x1 conv + BN (no ReLU) before it (``conv2.0``,
the depthwise one then ``conv2.1``); 'ir' has the depthwise conv alone. pytorchvideo's ``csn_r101``
is the 'ir' network.
"""
from __future__ import annotations

from torch import nn

from .blocks import Bottleneck3d
from .conv import ConvBN3d
from .resnet3d import ResNet3d

BOTTLENECK_MODES = ("ir", "ip")


class CSNBottleneck3d(Bottleneck3d):
    """Bottleneck3d with a depthwise 3x3x3 conv2 (``inflate_style='3x3x3'``)."""

    def __init__(self, inplanes: int, planes: int, *, bottleneck_mode: str = "ir", **kwargs) -> None:
        super().__init__(inplanes, planes, **kwargs)
        if bottleneck_mode not in BOTTLENECK_MODES:
            raise ValueError(f"bottleneck_mode must be one of {BOTTLENECK_MODES}, got {bottleneck_mode!r}")
        old = self.conv2.conv
        depthwise = ConvBN3d(planes, planes, old.kernel_size, stride=old.stride, padding=old.padding,
                             dilation=old.dilation, groups=planes)
        convs = [ConvBN3d(planes, planes, 1, act=False)] if bottleneck_mode == "ip" else []
        self.conv2 = nn.Sequential(*convs, depthwise)


class ResNet3dCSN(ResNet3d):
    """mmaction2's ``ResNet3dCSN`` (bottleneck depths 50/101/152); ``norm_eps`` is the BN epsilon
    (mmaction2's CSN: 1e-3; pytorchvideo's: 1e-5)."""

    def __init__(self, depth: int = 152, *, bottleneck_mode: str = "ir", norm_eps: float = 1e-3,
                 **kwargs) -> None:
        if depth not in (50, 101, 152):
            raise ValueError(f"CSN is built from bottlenecks: depth 50, 101 or 152, got {depth}")
        self.bottleneck_mode = bottleneck_mode
        for key, value in dict(temporal_strides=(1, 2, 2, 2), conv1_kernel=(3, 7, 7), inflate_style="3x3x3",
                               with_pool2=False).items():
            kwargs.setdefault(key, value)
        super().__init__(depth, **kwargs)
        self.norm_eps = norm_eps
        for m in self.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.eps = norm_eps

    @property
    def block(self):
        return CSNBottleneck3d

    @block.setter
    def block(self, _value) -> None:  # ResNet3d assigns its own block type; CSN keeps its own
        pass

    def _block_settings(self) -> dict:
        return {"bottleneck_mode": self.bottleneck_mode}
