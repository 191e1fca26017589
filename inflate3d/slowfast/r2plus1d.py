"""R(2+1)D: a ResNet3d whose convs are factorised into spatial then temporal convs.

mmaction2's ``ResNet2Plus1d`` factorises every conv (shortcuts too), each with its own middle
width; torchvision's ``r2plus1d_18`` gives both convs of a block the width computed from the block's
input, keeps plain 1x1x1 shortcuts and a 45-wide stem. Both are this network with other settings;
the names are mmaction2's (``conv1.conv.conv_s``, ``conv1.conv.bn_s``, ``conv1.conv.conv_t``).
pytorchvideo's ``r2plus1d_r50`` is a bottleneck net that factorises only the 3x3x3 conv (temporal
first, middle width = the block's width), with a plain 1x7x7 stem and no stem pool.
"""
from __future__ import annotations

from torch import nn

from .blocks import BasicBlock3d, Bottleneck3d
from .conv import ConvBN3d, mid_channels_2plus1d, triple
from .resnet3d import ResNet3d

MID_RULES = ("per_conv", "per_block", "planes")


class BasicBlock2Plus1d(BasicBlock3d):
    """BasicBlock3d with factorised convs. ``mid_rule='per_block'`` is torchvision's: both convs
    take the middle width of (inplanes -> planes)."""

    def __init__(self, inplanes: int, planes: int, *, spatial_stride: int = 1, temporal_stride: int = 1,
                 dilation: int = 1, downsample: nn.Module | None = None, style: str = "pytorch",
                 inflate: bool = True, inflate_style: str = "3x1x1", mid_rule: str = "per_conv") -> None:
        nn.Module.__init__(self)
        if mid_rule not in MID_RULES:
            raise ValueError(f"mid_rule must be one of {MID_RULES}, got {mid_rule!r}")
        kt = 3 if inflate else 1
        mid1 = mid_channels_2plus1d(inplanes, planes, 3)
        mid2 = mid1 if mid_rule == "per_block" else mid_channels_2plus1d(planes, planes, 3)
        self.conv1 = ConvBN3d(inplanes, planes, (kt, 3, 3), stride=(temporal_stride, spatial_stride, spatial_stride),
                              padding=(kt // 2, 1, 1), mid_channels=mid1)
        self.conv2 = ConvBN3d(planes, planes, (kt, 3, 3), padding=(kt // 2, 1, 1), act=False, mid_channels=mid2)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.non_local_block: nn.Module | None = None


class Bottleneck2Plus1d(Bottleneck3d):
    """Bottleneck3d whose 3x3x3 conv2 is factorised, temporal conv first (pytorchvideo)."""

    def __init__(self, inplanes: int, planes: int, *, mid_rule: str = "planes", temporal_first: bool = True,
                 **kwargs) -> None:
        super().__init__(inplanes, planes, **{**kwargs, "inflate": False})  # conv2 is rebuilt below
        stride = (kwargs.get("temporal_stride", 1),) + (kwargs.get("spatial_stride", 1),) * 2
        mid = planes if mid_rule == "planes" else mid_channels_2plus1d(planes, planes, 3)
        self.conv2 = ConvBN3d(planes, planes, 3, stride=stride if kwargs.get("style", "pytorch") == "pytorch"
                              else 1, padding=1, mid_channels=mid, temporal_first=temporal_first)


class ResNet2Plus1d(ResNet3d):
    """R(2+1)D with mmaction2's names. ``stem_mid_channels`` fixes the stem's middle width
    (torchvision: 45), ``factorised_shortcut`` factorises the 1x1x1 shortcuts too (mmaction2),
    ``norm_eps`` is the BN epsilon (mmaction2's R(2+1)D config: 1e-3)."""

    def __init__(self, depth: int = 34, *, mid_rule: str = "per_conv", stem_mid_channels: int | None = None,
                 factorised_shortcut: bool = True, factorised_stem: bool = True, temporal_first: bool = False,
                 norm_eps: float = 1e-5, **kwargs) -> None:
        self.mid_rule = mid_rule
        self.stem_mid_channels = stem_mid_channels
        self.factorised_shortcut = factorised_shortcut
        self.factorised_stem = factorised_stem
        self.temporal_first = temporal_first
        self._bottleneck = depth >= 50
        kwargs.setdefault("with_pool2", False)
        super().__init__(depth, **kwargs)
        self.norm_eps = norm_eps
        for m in self.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.eps = norm_eps

    @property
    def block(self):
        return Bottleneck2Plus1d if self._bottleneck else BasicBlock2Plus1d

    @block.setter
    def block(self, _value) -> None:  # ResNet3d assigns its own block type; R(2+1)D keeps its own
        pass

    def _make_stem_conv(self, in_channels: int, out_channels: int, *, stride) -> nn.Module:
        if not self.factorised_stem:
            return super()._make_stem_conv(in_channels, out_channels, stride=stride)
        mid = self.stem_mid_channels or mid_channels_2plus1d(in_channels, out_channels, self.conv1_kernel)
        return ConvBN3d(in_channels, out_channels, self.conv1_kernel, stride=stride,
                        padding=tuple((k - 1) // 2 for k in triple(self.conv1_kernel)), mid_channels=mid)

    def _make_downsample(self, inplanes: int, out: int, stride) -> nn.Module:
        mid = mid_channels_2plus1d(inplanes, out, 1) if self.factorised_shortcut else None
        return ConvBN3d(inplanes, out, 1, stride=stride, act=False, mid_channels=mid)

    def _block_settings(self) -> dict:
        if self._bottleneck:
            return {"mid_rule": self.mid_rule, "temporal_first": self.temporal_first}
        return {"mid_rule": self.mid_rule}

