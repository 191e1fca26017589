"""TSM: a 2D ResNet over N*T frames whose residual branches shift channels along time.

Before conv1 of a block (``shift_place='blockres'``; for depth >= 101 every second block) or
before the whole block (``'block'``), 1/``shift_div`` of the channels move one frame back in time,
1/``shift_div`` one frame forward (zeros where nothing comes in), the rest stay. Weights are exactly
the 2D net's; only the names change. State dicts match mmaction2's ``ResNetTSM`` + ``TSMHead``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .heads import BaseHead
from .resnet3d import STAGE_BLOCKS, init_module


def temporal_shift(x: torch.Tensor, num_segments: int, shift_div: int) -> torch.Tensor:
    """(N*T, C, H, W) -> same shape. Channels [0, C/d) take frame t+1 (shift left), channels
    [C/d, 2C/d) take frame t-1 (shift right), the rest are unchanged (seed 004's ``shift``)."""
    nt, c, h, w = x.shape
    x = x.view(nt // num_segments, num_segments, c, h, w)
    fold = c // shift_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold: 2 * fold] = x[:, :-1, fold: 2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(nt, c, h, w)


class TemporalShift(nn.Module):
    """Shift, then run ``net`` (a conv, or a whole block): the wrapped module is named ``net``."""

    def __init__(self, net: nn.Module, num_segments: int, shift_div: int) -> None:
        super().__init__()
        self.net = net
        self.num_segments = num_segments
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(temporal_shift(x, self.num_segments, self.shift_div))


class TemporalPool(nn.Module):
    """Max-pool time by 2 (kernel 3, padding 1) before ``net``: TSM's optional temporal pooling."""

    def __init__(self, net: nn.Module, num_segments: int) -> None:
        super().__init__()
        self.net = net
        self.num_segments = num_segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        x = x.view(nt // self.num_segments, self.num_segments, c, h, w).transpose(1, 2)
        x = F.max_pool3d(x, (3, 1, 1), (2, 1, 1), (1, 0, 0))
        return self.net(x.transpose(1, 2).reshape(-1, c, h, w))


class ConvBN2d(nn.Module):
    """``Conv2d`` (no bias) -> ``BatchNorm2d`` -> optional ReLU, children ``conv``/``bn``."""

    def __init__(self, cin: int, cout: int, k: int, *, stride: int = 1, padding: int = 0, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.relu(x) if self.relu is not None else x


class BasicBlock2d(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = ConvBN2d(inplanes, planes, 3, stride=stride, padding=1)
        self.conv2 = ConvBN2d(planes, planes, 3, padding=1, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class Bottleneck2d(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = ConvBN2d(inplanes, planes, 1)
        self.conv2 = ConvBN2d(planes, planes, 3, stride=stride, padding=1)
        self.conv3 = ConvBN2d(planes, planes * 4, 1, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNetTSM(nn.Module):
    """mmaction2's ResNetTSM: ``forward`` takes (N, C, T, H, W) clips or (N*T, C, H, W) frames and
    returns (N*T', C', H', W') features (T' = T/2 with ``temporal_pool``)."""

    def __init__(self, depth: int = 50, *, num_segments: int = 8, shift_div: int = 8,
                 shift_place: str = "blockres", temporal_pool: bool = False, norm_eval: bool = False) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"invalid depth {depth} for ResNetTSM; choose one of {tuple(STAGE_BLOCKS)}")
        if shift_place not in ("blockres", "block"):
            raise ValueError(f"shift_place must be 'blockres' or 'block', got {shift_place!r}")
        self.depth, self.num_segments, self.shift_div = depth, num_segments, shift_div
        self.shift_place, self.temporal_pool, self.norm_eval = shift_place, temporal_pool, norm_eval
        counts = STAGE_BLOCKS[depth][1]
        block = Bottleneck2d if STAGE_BLOCKS[depth][0].expansion == 4 else BasicBlock2d
        self.conv1 = ConvBN2d(3, 64, 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        segments = [num_segments] + [num_segments // 2 if temporal_pool else num_segments] * 3
        every = 2 if counts[2] >= 23 else 1  # ResNet-101/152: every second block, as TSM does
        inplanes = 64
        for i, n in enumerate(counts):
            planes, stride = 64 * 2**i, 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = ConvBN2d(inplanes, planes * block.expansion, 1, stride=stride, act=False)
            blocks: list[nn.Module] = []
            for b in range(n):
                blk = block(inplanes if b == 0 else planes * block.expansion, planes, stride if b == 0 else 1,
                            downsample if b == 0 else None)
                if shift_place == "block":
                    blk = TemporalShift(blk, segments[i], shift_div)
                elif b % every == 0:
                    blk.conv1.conv = TemporalShift(blk.conv1.conv, segments[i], shift_div)
                blocks.append(blk)
            inplanes = planes * block.expansion
            layer: nn.Module = nn.Sequential(*blocks)
            if temporal_pool and i == 1:
                layer = TemporalPool(layer, num_segments)
            self.add_module(f"layer{i + 1}", layer)
        self.res_layers = [f"layer{i + 1}" for i in range(4)]
        self.feat_dim = inplanes

    def shifted_blocks(self) -> list[int]:
        """How many shifted blocks each stage has (the boundary effect grows by one per block)."""
        out = []
        for name in self.res_layers:
            layer = getattr(self, name)
            layer = layer.net if isinstance(layer, TemporalPool) else layer
            out.append(sum(isinstance(b, TemporalShift) or isinstance(b.conv1.conv, TemporalShift) for b in layer))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:  # (N, C, T, H, W) -> (N*T, C, H, W)
            x = x.transpose(1, 2).reshape(-1, *x.shape[1:2], *x.shape[3:])
        x = self.maxpool(self.conv1(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        for m in self.modules():
            init_module(m, generator)

    def train(self, mode: bool = True) -> "ResNetTSM":
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


class TSMHead(BaseHead):
    """Average pool -> dropout -> fc per frame, then the average over segments (consensus)."""

    def __init__(self, num_classes: int, in_channels: int, *, num_segments: int = 8,
                 temporal_pool: bool = False, **kwargs) -> None:
        kwargs.setdefault("dropout_ratio", 0.8)
        kwargs.setdefault("init_std", 0.001)
        super().__init__(num_classes, in_channels, **kwargs)
        self.num_segments = num_segments // 2 if temporal_pool else num_segments
        self.avg_pool = nn.AdaptiveAvgPool2d(1) if self.spatial_type == "avg" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.classify(self.pool(x))
        return scores.view(-1, self.num_segments, scores.shape[-1]).mean(dim=1)
