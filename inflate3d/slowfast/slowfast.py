"""ResNet3dSlowFast: two pathways, the slow one fed by laterals from the fast one."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .pathway import ResNet3dPathway

SLOW_DEFAULTS: dict[str, Any] = dict(depth=50, lateral=True, conv1_kernel=(1, 7, 7),
                                     conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1))
FAST_DEFAULTS: dict[str, Any] = dict(depth=50, lateral=False, base_channels=8,
                                     conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1)


class ResNet3dSlowFast(nn.Module):
    """SlowFast backbone, mmaction2's ``ResNet3dSlowFast`` (keys ``slow_path.*``, ``fast_path.*``).

    ``forward(clip)`` samples the slow pathway every ``resample_rate`` frames and the fast one every
    ``resample_rate // speed_ratio`` frames by nearest interpolation, as mmaction2 does.
    ``forward((slow, fast))`` takes the two pathway inputs as given, so a comparison with PySlowFast
    or pytorchvideo can feed both sides the very same frames. Returns ``(x_slow, x_fast)``.
    """

    def __init__(self, *, resample_rate: int = 8, speed_ratio: int = 8, channel_ratio: int = 8,
                 slow_pathway: Mapping[str, Any] | None = None,
                 fast_pathway: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if resample_rate % speed_ratio:
            raise ValueError(f"resample_rate {resample_rate} must be a multiple of speed_ratio "
                             f"{speed_ratio}")
        self.resample_rate = resample_rate
        self.speed_ratio = speed_ratio
        self.channel_ratio = channel_ratio
        slow_cfg = {**SLOW_DEFAULTS, **(slow_pathway or {})}
        fast_cfg = {**FAST_DEFAULTS, **(fast_pathway or {})}
        if slow_cfg["lateral"]:
            slow_cfg.update(speed_ratio=speed_ratio, channel_ratio=channel_ratio)
        self.slow_path = ResNet3dPathway(**slow_cfg)
        self.fast_path = ResNet3dPathway(**fast_cfg)
        if self.slow_path.num_stages != self.fast_path.num_stages:
            raise ValueError("slow and fast pathways need the same number of stages")

    def sample(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two pathway inputs mmaction2 takes from one clip (frames 0, r, 2r, ...)."""
        slow = F.interpolate(clip, mode="nearest", scale_factor=(1.0 / self.resample_rate, 1.0, 1.0))
        fast_rate = self.resample_rate // self.speed_ratio
        if fast_rate == 1:  # every frame: no copy
            return slow, clip
        return slow, F.interpolate(clip, mode="nearest", scale_factor=(1.0 / fast_rate, 1.0, 1.0))

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x_slow, x_fast = self.sample(x) if isinstance(x, torch.Tensor) else x
        x_slow = self.slow_path.stem(x_slow)
        x_fast = self.fast_path.stem(x_fast)
        x_slow = self._fuse(x_slow, x_fast, 0)
        last = len(self.slow_path.res_layers) - 1
        for i, name in enumerate(self.slow_path.res_layers):
            x_slow = getattr(self.slow_path, name)(x_slow)
            x_fast = getattr(self.fast_path, name)(x_fast)
            if i != last:
                x_slow = self._fuse(x_slow, x_fast, i + 1)
        return x_slow, x_fast

    def _fuse(self, x_slow: torch.Tensor, x_fast: torch.Tensor, stage: int) -> torch.Tensor:
        lateral = self.slow_path.lateral_for_stage(stage)
        return x_slow if lateral is None else torch.cat((x_slow, lateral(x_fast)), dim=1)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        self.slow_path.init_weights(generator)
        self.fast_path.init_weights(generator)
