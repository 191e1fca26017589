"""ResNet3d: the I3D / Slow-only backbone with mmaction2's settings, names and parameter order."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .blocks import BasicBlock3d, Bottleneck3d
from .conv import ConvBN3d, FrameConv2d, triple
from .depths import DEPTHS, STAGE_COUNTS
from .non_local import NonLocal3d

STAGE_BLOCKS: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    depth: (Bottleneck3d if expansion == 4 else BasicBlock3d, counts)
    for depth, (expansion, counts) in STAGE_COUNTS.items()}

InflatePattern = int | Sequence[int | Sequence[int]]


def per_stage(value, num_stages: int) -> tuple:
    """An int (or a single value) for every stage, or one entry per stage."""
    if isinstance(value, (int, bool)):
        return (value,) * num_stages
    value = tuple(value)
    if len(value) != num_stages:
        raise ValueError(f"expected {num_stages} per-stage values, got {value!r}")
    return value


def per_block(flag, blocks: int, stage: int, what: str = "inflate pattern") -> tuple:
    """A stage's setting as one value per block: a single value means every block."""
    if isinstance(flag, (int, bool, str)):
        return (flag,) * blocks
    flags = tuple(flag)
    if len(flags) != blocks:
        raise ValueError(f"{what} of layer{stage + 1} has {len(flags)} flags for {blocks} blocks")
    return flags


class ResNet3d(nn.Module):
    """3D ResNet (depth 18-152) whose state dict matches mmaction2's ``ResNet3d`` key for key.

    ``inflate`` and ``inflate_style`` take one value for the net, one per stage, or per stage one
    per block (mixed 3x1x1 / 3x3x3 nets, as published by I3ResNet-style inflaters).

    Forward returns the feature map of the stages in ``out_indices`` (a tensor when only one).
    ``norm_eval`` keeps BN in eval mode while training; ``frozen_stages`` freezes the stem
    (0) and the first N stages.
    """

    def __init__(self, depth: int = 50, *, stage_blocks: Sequence[int] | None = None,
                 in_channels: int = 3, num_stages: int = 4, base_channels: int = 64,
                 out_indices: Sequence[int] = (3,), spatial_strides: Sequence[int] = (1, 2, 2, 2),
                 temporal_strides: Sequence[int] = (1, 1, 1, 1),
                 dilations: Sequence[int] = (1, 1, 1, 1), conv1_kernel=(3, 7, 7),
                 conv1_stride_s: int = 2, conv1_stride_t: int = 1, pool1_stride_s: int = 2,
                 pool1_stride_t: int = 1, with_pool1: bool = True, with_pool2: bool = True,
                 style: str = "pytorch", frozen_stages: int = -1, inflate: InflatePattern = (1, 1, 1, 1),
                 inflate_style: str | Sequence = "3x1x1", norm_eval: bool = False,
                 zero_init_residual: bool = True, non_local: InflatePattern = 0,
                 non_local_cfg: dict | None = None, conv_2d: bool = False) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"invalid depth {depth} for ResNet3d; choose one of {DEPTHS}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be 1..4, got {num_stages}")
        self.depth = depth
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.num_stages = num_stages
        self.out_indices = tuple(out_indices)
        if max(self.out_indices) >= num_stages:
            raise ValueError(f"out_indices {self.out_indices} exceed num_stages {num_stages}")
        self.conv1_kernel = triple(conv1_kernel)
        self.with_pool1 = with_pool1
        self.with_pool2 = with_pool2
        self.style = style
        self.frozen_stages = frozen_stages
        self.inflate_style = inflate_style
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.block, default_blocks = STAGE_BLOCKS[depth]
        self.stage_blocks = tuple(stage_blocks if stage_blocks is not None
                                  else default_blocks[:num_stages])
        spatial_strides = per_stage(spatial_strides, num_stages)
        temporal_strides = per_stage(temporal_strides, num_stages)
        dilations = per_stage(dilations, num_stages)
        inflations = per_stage(inflate, num_stages)
        styles = per_stage(inflate_style, num_stages) if not isinstance(inflate_style, str) \
            else (inflate_style,) * num_stages
        non_locals = per_stage(non_local, num_stages)
        self.non_local_cfg = dict(non_local_cfg or {})

        self.conv1 = self._make_stem_conv(in_channels, base_channels,
                                          stride=(conv1_stride_t, conv1_stride_s, conv1_stride_s))
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(pool1_stride_t, pool1_stride_s, pool1_stride_s),
                                    padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1))

        lateral_inplanes = self._lateral_inplanes()
        self.res_layers: list[str] = []
        inplanes = base_channels
        for i, blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            layer = self._make_res_layer(inplanes + lateral_inplanes[i], planes, blocks,
                                         spatial_stride=spatial_strides[i],
                                         temporal_stride=temporal_strides[i],
                                         dilation=dilations[i],
                                         inflate=tuple(map(bool, per_block(inflations[i], blocks, i))),
                                         styles=per_block(styles[i], blocks, i, "inflate_style"))
            for b, flag in enumerate(per_block(non_locals[i], blocks, i, "non_local pattern")):
                if flag:  # after the block's own modules, as mmaction2 registers it
                    layer[b].non_local_block = NonLocal3d(planes * self.block.expansion, **self.non_local_cfg)
            inplanes = planes * self.block.expansion
            self.add_module(f"layer{i + 1}", layer)
            self.res_layers.append(f"layer{i + 1}")
        self.feat_dim = self.block.expansion * base_channels * 2 ** (len(self.stage_blocks) - 1)
        self.conv_2d = conv_2d
        if conv_2d:  # mmaction2's C2D: 2-D convs (4-D weights) applied frame by frame
            for m in self.modules():
                if isinstance(m, ConvBN3d) and isinstance(m.conv, nn.Conv3d) and m.conv.kernel_size[0] == 1 \
                        and m.conv.stride[0] == 1:
                    m.conv = FrameConv2d.from_3d(m.conv)

    def _lateral_inplanes(self) -> list[int]:
        """Extra input channels of each stage's first block (laterals concatenated in)."""
        return [0] * self.num_stages

    def _make_res_layer(self, inplanes: int, planes: int, blocks: int, *, spatial_stride: int,
                        temporal_stride: int, dilation: int, inflate: tuple[bool, ...],
                        styles: tuple[str, ...]) -> nn.Sequential:
        out = planes * self.block.expansion
        downsample = None
        if spatial_stride != 1 or inplanes != out:
            downsample = self._make_downsample(inplanes, out, (temporal_stride, spatial_stride, spatial_stride))
        layers = []
        for b in range(blocks):
            layers.append(self.block(
                inplanes if b == 0 else out, planes,
                spatial_stride=spatial_stride if b == 0 else 1,
                temporal_stride=temporal_stride if b == 0 else 1,
                dilation=dilation, downsample=downsample if b == 0 else None, style=self.style,
                inflate=inflate[b], inflate_style=styles[b], **self._block_settings()))
        return nn.Sequential(*layers)

    # what a variant (R(2+1)D, CSN) changes: the stem conv, the shortcut conv, the blocks' settings
    def _make_stem_conv(self, in_channels: int, out_channels: int, *, stride) -> nn.Module:
        return ConvBN3d(in_channels, out_channels, self.conv1_kernel, stride=stride,
                        padding=tuple((k - 1) // 2 for k in self.conv1_kernel))

    def _make_downsample(self, inplanes: int, out: int, stride) -> nn.Module:
        return ConvBN3d(inplanes, out, 1, stride=stride, act=False)

    def _block_settings(self) -> dict:
        return {}

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.maxpool(x) if self.with_pool1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """mmaction2's fresh init: Kaiming-normal (fan_out, ReLU) convs, BN 1/0, and with
        ``zero_init_residual`` the last BN of every block at 0 so blocks start as identities."""
        for m in self.modules():
            init_module(m, generator)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock3d, Bottleneck3d)):
                    nn.init.zeros_(m.last_bn().weight)

    def frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.conv1] + [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]

    def train(self, mode: bool = True) -> "ResNet3d":
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


@torch.no_grad()
def init_module(m: nn.Module, generator: torch.Generator | None = None) -> None:
    """Initialise one leaf module the way mmaction2 (mmcv ``kaiming_init``) does."""
    if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Conv2d)):  # FrameConv2d is a Conv2d
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
        m.reset_running_stats()
