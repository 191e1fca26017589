"""mmaction2's ``X3DHead``: global pool -> ``fc1`` (Linear, 2048 wide, no bias by default) -> ReLU
-> dropout -> ``fc2``. PySlowFast's ``lin_5`` and pytorchvideo's ``post_conv`` are the same map as a
1x1x1 conv applied after the pool (the converters reshape it)."""
from __future__ import annotations

import torch
from torch import nn

from ..slowfast.heads import BaseHead

MID_CHANNELS = 2048  # fixed in mmaction2 (PySlowFast DIM_C5, pytorchvideo head_dim_out)


class X3DHead(nn.Module):
    loss = BaseHead.loss  # mmaction2's BaseHead loss (cross-entropy / BCE, label smoothing, top-k)

    def __init__(self, num_classes: int, in_channels: int, *, spatial_type: str = "avg",
                 dropout_ratio: float = 0.5, init_std: float = 0.01, fc1_bias: bool = False,
                 multi_class: bool = False, label_smooth_eps: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        pools = {"avg": nn.AdaptiveAvgPool3d, "max": nn.AdaptiveMaxPool3d}
        if spatial_type not in pools:
            raise ValueError(f"spatial_type must be 'avg' or 'max', got {spatial_type!r}")
        self.num_classes, self.in_channels, self.mid_channels = num_classes, in_channels, MID_CHANNELS
        self.spatial_type, self.dropout_ratio, self.init_std = spatial_type, dropout_ratio, init_std
        self.multi_class, self.label_smooth_eps, self.loss_weight = multi_class, label_smooth_eps, loss_weight
        self.dropout = nn.Dropout(p=dropout_ratio) if dropout_ratio else None
        self.fc1 = nn.Linear(in_channels, self.mid_channels, bias=fc1_bias)
        self.fc2 = nn.Linear(self.mid_channels, num_classes)
        self.relu = nn.ReLU()
        self.pool = pools[spatial_type]((1, 1, 1))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0.0, self.init_std, generator=generator)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.pool(x).flatten(1)))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc2(x)
