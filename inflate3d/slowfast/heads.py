"""Classification heads (mmaction2's I3DHead and SlowFastHead) and their training loss."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BaseHead(nn.Module):
    """Pooling -> dropout -> ``fc_cls``, plus ``loss(cls_score, labels)`` as mmaction2 computes it.

    Single-label: cross-entropy (with ``label_smooth_eps`` as label smoothing) and top-1/top-5
    accuracy. ``multi_class``: binary cross-entropy on multi-hot labels, smoothed towards
    ``eps / num_classes``. ``loss_weight`` scales the loss.
    """

    def __init__(self, num_classes: int, in_channels: int, *, spatial_type: str = "avg",
                 dropout_ratio: float = 0.5, init_std: float = 0.01, multi_class: bool = False,
                 label_smooth_eps: float = 0.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if spatial_type not in ("avg", None):
            raise ValueError(f"spatial_type must be 'avg' or None, got {spatial_type!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.spatial_type = spatial_type
        self.dropout_ratio = dropout_ratio
        self.init_std = init_std
        self.multi_class = multi_class
        self.label_smooth_eps = label_smooth_eps
        self.loss_weight = loss_weight
        self.dropout = nn.Dropout(p=dropout_ratio) if dropout_ratio else None
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.avg_pool = nn.AdaptiveAvgPool3d((1, 1, 1)) if spatial_type == "avg" else None

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        nn.init.normal_(self.fc_cls.weight, 0.0, self.init_std, generator=generator)
        nn.init.zeros_(self.fc_cls.bias)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.avg_pool(x) if self.avg_pool is not None else x

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x.flatten(1))

    def loss(self, cls_score: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{'loss_cls', 'top1_acc', 'top5_acc'}`` (accuracies for single-label only)."""
        if labels.dim() == 0:
            labels = labels.unsqueeze(0)
        losses: dict[str, torch.Tensor] = {}
        if self.multi_class:
            target = labels.float()
            if self.label_smooth_eps:
                target = (1 - self.label_smooth_eps) * target + self.label_smooth_eps / self.num_classes
            loss = F.binary_cross_entropy_with_logits(cls_score, target)
        else:
            for k, acc in zip((1, 5), top_k_accuracy(cls_score.detach(), labels, (1, 5))):
                losses[f"top{k}_acc"] = acc
            loss = F.cross_entropy(cls_score, labels, label_smoothing=self.label_smooth_eps)
        losses["loss_cls"] = loss * self.loss_weight
        return losses


def top_k_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk=(1, 5)) -> list[torch.Tensor]:
    """Fraction of rows whose label is among the k highest scores (k capped at the class count)."""
    out = []
    for k in topk:
        top = scores.topk(min(k, scores.shape[1]), dim=1).indices
        out.append((top == labels.view(-1, 1)).any(dim=1).float().mean())
    return out


class I3DHead(BaseHead):
    """Head for single-pathway nets: average over T, H, W -> dropout -> fc."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(x))


class SlowFastHead(BaseHead):
    """Head for SlowFast. The pooled features are concatenated **fast first, then slow**, as
    mmaction2 does (its head unpacks ``(x_slow, x_fast)`` into swapped names); checkpoint
    conversions depend on this column order of ``fc_cls.weight``."""

    def __init__(self, num_classes: int, in_channels: int, **kwargs) -> None:
        kwargs.setdefault("dropout_ratio", 0.8)
        super().__init__(num_classes, in_channels, **kwargs)

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x_slow, x_fast = x
        return self.classify(torch.cat((self.pool(x_fast), self.pool(x_slow)), dim=1))
