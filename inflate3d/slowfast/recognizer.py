"""Recognizer3D: ``backbone`` + ``cls_head`` (state-dict keys ``backbone.*``, ``cls_head.*``)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

AVERAGE_CLIPS = (None, "score", "prob")


class Recognizer3D(nn.Module):
    """A video classifier. ``forward`` maps a batch of clips (N, C, T, H, W) to class scores;
    ``predict`` takes several clips per video (N, clips, C, T, H, W) and averages them as
    mmaction2's ``average_clips`` says: None keeps them (N, clips, K), 'score' averages the
    scores, 'prob' averages softmax (sigmoid for multi-label) probabilities."""

    def __init__(self, backbone: nn.Module, cls_head: nn.Module | None, *,
                 average_clips: str | None = "prob") -> None:
        super().__init__()
        if average_clips not in AVERAGE_CLIPS:
            raise ValueError(f"average_clips must be one of {AVERAGE_CLIPS}, got {average_clips!r}")
        self.backbone = backbone
        self.cls_head = cls_head
        self.average_clips = average_clips

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(imgs)
        return feats if self.cls_head is None else self.cls_head(feats)

    def loss(self, imgs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.cls_head is None:
            raise ValueError("this recognizer has no head; build it with num_classes > 0")
        return self.cls_head.loss(self(imgs), labels)

    @torch.no_grad()
    def predict(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 6:
            raise ValueError(f"predict expects (N, clips, C, T, H, W), got shape {tuple(clips.shape)}")
        n, num_clips = clips.shape[:2]
        scores = self(clips.flatten(0, 1)).view(n, num_clips, -1)
        if self.average_clips is None:
            return scores
        if self.average_clips == "prob":
            multi = getattr(self.cls_head, "multi_class", False)
            scores = torch.sigmoid(scores) if multi else F.softmax(scores, dim=2)
        return scores.mean(dim=1)

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        self.backbone.init_weights(generator)
        if self.cls_head is not None:
            self.cls_head.init_weights(generator)
