"""mmaction2's X3D backbone: names, shapes and forward exactly as ``mmaction2.models.X3D``.

A channel-wise ResNet: stem ``conv1_s`` (1x3x3, stride 2, no BN) then ``conv1_t`` (5x1x1 depthwise,
BN, ReLU); four stages of ``BlockX3D`` (1x1x1 expand -> 3x3x3 depthwise with the spatial stride ->
squeeze-excitation on every other block -> Swish -> 1x1x1 project, plus the shortcut); a final
1x1x1 ``conv5`` (BN, ReLU) widens by ``gamma_b``. No temporal stride anywhere.

Widths and depths follow mmaction2's rounding: base width ``round_width(24, gamma_w)``, stage i has
``base * 2**i`` outputs, ``int(outputs * gamma_b)`` inner channels and ``ceil(gamma_d * (1, 2, 5, 3)[i])``
blocks (pytorchvideo's and PySlowFast's ``round_width`` / ``round_repeats`` give the same numbers).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..slowfast.conv import ConvBN3d
from ..slowfast.resnet3d import init_module

STAGE_BLOCKS = (1, 2, 5, 3)
BASE_CHANNELS = 24


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """mmaction2's ``_round_width``: scale, round to a multiple of ``divisor``, never below 90%."""
    if not multiplier:
        return int(width)
    width *= multiplier
    out = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if out < 0.9 * width:
        out += divisor
    return int(out)


def round_repeats(repeats: int, multiplier: float) -> int:
    return repeats if not multiplier else int(math.ceil(multiplier * repeats))


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class SEModule(nn.Module):
    """Squeeze-excitation: global average -> 1x1x1 conv -> ReLU -> 1x1x1 conv -> sigmoid gate."""

    def __init__(self, channels: int, reduction: float) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.bottleneck = round_width(channels, reduction)
        self.fc1 = nn.Conv3d(channels, self.bottleneck, kernel_size=1, padding=0)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv3d(self.bottleneck, channels, kernel_size=1, padding=0)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class BlockX3D(nn.Module):
    """One X3D residual block. Modules are registered in mmaction2's order (``downsample``,
    ``conv1..3``, then ``se_module``), which fixes the state-dict order."""

    def __init__(self, inplanes: int, planes: int, outplanes: int, *, spatial_stride: int = 1,
                 downsample: nn.Module | None = None, se_ratio: float | None = None,
                 use_swish: bool = True) -> None:
        super().__init__()
        self.se_ratio = se_ratio
        self.downsample = downsample
        self.conv1 = ConvBN3d(inplanes, planes, 1)
        self.conv2 = ConvBN3d(planes, planes, 3, stride=(1, spatial_stride, spatial_stride), padding=1,
                              groups=planes, act=False)
        self.swish = Swish() if use_swish else nn.Identity()
        self.conv3 = ConvBN3d(planes, outplanes, 1, act=False)
        if se_ratio is not None:
            self.se_module = SEModule(planes, se_ratio)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if self.se_ratio is not None:
            out = self.se_module(out)
        out = self.conv3(self.swish(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class X3D(nn.Module):
    """mmaction2's ``X3D(gamma_w, gamma_b, gamma_d, ...)``; ``feat_dim`` is conv5's output width."""

    def __init__(self, gamma_w: float = 1.0, gamma_b: float = 1.0, gamma_d: float = 1.0, *,
                 in_channels: int = 3, spatial_strides=(2, 2, 2, 2), se_style: str = "half",
                 se_ratio: float | None = 1 / 16, use_swish: bool = True,
                 zero_init_residual: bool = True) -> None:
        super().__init__()
        if se_style not in ("all", "half"):
            raise ValueError(f"se_style must be 'all' or 'half', got {se_style!r}")
        if len(spatial_strides) != len(STAGE_BLOCKS):
            raise ValueError(f"spatial_strides needs {len(STAGE_BLOCKS)} values, got {spatial_strides!r}")
        self.gamma_w, self.gamma_b, self.gamma_d = gamma_w, gamma_b, gamma_d
        self.zero_init_residual = zero_init_residual
        self.base_channels = round_width(BASE_CHANNELS, gamma_w)
        self.stage_blocks = tuple(round_repeats(n, gamma_d) for n in STAGE_BLOCKS)
        self.conv1_s = ConvBN3d(in_channels, self.base_channels, (1, 3, 3), stride=(1, 2, 2),
                                padding=(0, 1, 1), norm=False, act=False)
        self.conv1_t = ConvBN3d(self.base_channels, self.base_channels, (5, 1, 1), padding=(2, 0, 0),
                                groups=self.base_channels)
        self.res_layers = []
        layer_inplanes = self.base_channels
        for i, blocks in enumerate(self.stage_blocks):
            inplanes = self.base_channels * 2 ** i
            planes = int(inplanes * gamma_b)
            stride = spatial_strides[i]
            downsample = None
            if stride != 1 or layer_inplanes != inplanes:
                downsample = ConvBN3d(layer_inplanes, inplanes, 1, stride=(1, stride, stride), act=False)
            layers = []
            for b in range(blocks):
                with_se = se_style == "all" or b % 2 == 0
                layers.append(BlockX3D(layer_inplanes if b == 0 else inplanes, planes, inplanes,
                                       spatial_stride=stride if b == 0 else 1,
                                       downsample=downsample if b == 0 else None,
                                       se_ratio=se_ratio if with_se else None, use_swish=use_swish))
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
            self.res_layers.append(f"layer{i + 1}")
            layer_inplanes = inplanes
        self.conv5 = ConvBN3d(layer_inplanes, int(layer_inplanes * gamma_b), 1)
        self.feat_dim = int(layer_inplanes * gamma_b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1_t(self.conv1_s(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return self.conv5(x)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """mmaction2's fresh init: Kaiming-normal convs (SE convs included), BN 1/0, and with
        ``zero_init_residual`` each block's conv3 BN at 0, so blocks start as their shortcut."""
        for m in self.modules():
            init_module(m, generator)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, BlockX3D):
                    nn.init.zeros_(m.conv3.bn.weight)
