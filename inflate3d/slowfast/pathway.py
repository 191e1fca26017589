"""ResNet3dPathway: a ResNet3d that receives lateral connections from the other pathway.

Each lateral is a temporal conv (kernel ``fusion_kernel`` x1x1, stride ``speed_ratio`` in time) on
the fast features, concatenated to the slow features along channels. So the first block of every
slow stage (and its downsample) sees ``lateral_inplanes[i]`` extra input channels, appended at the
end of dim 1: that is where inflation zero-pads.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .conv import ConvBN3d, DeConvBN3d
from .resnet3d import ResNet3d


class ResNet3dPathway(ResNet3d):
    """A SlowFast pathway; with ``lateral`` it owns ``conv1_lateral`` and ``layer{i}_lateral``.

    ``lateral_norm`` adds BN+ReLU to the laterals (PySlowFast/pytorchvideo style);
    ``lateral_inv`` makes them time-upsampling transposed convs (feeding a slow stream into a
    fast one); ``lateral_infl`` is the lateral's channel multiplier; ``lateral_activate`` turns
    each lateral (stem, layer1, layer2, layer3) on or off.
    """

    def __init__(self, depth: int = 50, *, lateral: bool = False, lateral_norm: bool = False,
                 lateral_inv: bool = False, speed_ratio: int = 8, channel_ratio: int = 8,
                 fusion_kernel: int = 5, lateral_infl: int = 2,
                 lateral_activate: Sequence[int] = (1, 1, 1, 1), **kwargs) -> None:
        self.lateral = lateral
        self.lateral_norm = lateral_norm
        self.lateral_inv = lateral_inv
        self.speed_ratio = speed_ratio
        self.channel_ratio = channel_ratio
        self.fusion_kernel = fusion_kernel
        self.lateral_infl = lateral_infl
        self.lateral_activate = tuple(int(bool(a)) for a in lateral_activate)
        if len(self.lateral_activate) != kwargs.get("num_stages", 4):
            raise ValueError(f"lateral_activate needs one flag per stage, got {lateral_activate!r}")
        super().__init__(depth, **kwargs)
        self.lateral_connections: list[str] = []
        if not lateral:
            return
        if self.lateral_activate[0]:
            self.conv1_lateral = self._make_lateral(self._stage_in_channels(0))
        for i in range(self.num_stages - 1):
            if self.lateral_activate[i + 1]:
                name = f"layer{i + 1}_lateral"
                self.add_module(name, self._make_lateral(self._stage_in_channels(i + 1)))
                self.lateral_connections.append(name)

    def _stage_in_channels(self, i: int) -> int:
        """This pathway's channels entering stage i (stem width for i=0)."""
        if i == 0:
            return self.base_channels
        return self.base_channels * 2 ** (i - 1) * self.block.expansion

    def _lateral_out_channels(self, i: int) -> int:
        c = self._stage_in_channels(i)
        return c * self.channel_ratio // self.lateral_infl if self.lateral_inv \
            else c * self.lateral_infl // self.channel_ratio

    def _lateral_inplanes(self) -> list[int]:
        return [self._lateral_out_channels(i) if self.lateral and self.lateral_activate[i] else 0
                for i in range(self.num_stages)]

    def _make_lateral(self, channels: int) -> nn.Module:
        kernel = (self.fusion_kernel, 1, 1)
        stride = (self.speed_ratio, 1, 1)
        padding = ((self.fusion_kernel - 1) // 2, 0, 0)
        if self.lateral_inv:
            return DeConvBN3d(channels * self.channel_ratio,
                              channels * self.channel_ratio // self.lateral_infl, kernel,
                              stride=stride, padding=padding)
        return ConvBN3d(channels // self.channel_ratio, channels * self.lateral_infl // self.channel_ratio,
                        kernel, stride=stride, padding=padding, norm=self.lateral_norm,
                        act=self.lateral_norm)

    def lateral_for_stage(self, i: int) -> nn.Module | None:
        """The lateral whose output is concatenated before stage i (0 = after the stem)."""
        return getattr(self, "conv1_lateral" if i == 0 else f"layer{i}_lateral", None) \
            if self.lateral else None

    def frozen_modules(self) -> list[nn.Module]:
        mods = super().frozen_modules()
        for i in range(1, self.frozen_stages + 1):
            lat = self.lateral_for_stage(i) if i < self.num_stages else None
            if lat is not None:
                mods.append(lat)
        return mods
