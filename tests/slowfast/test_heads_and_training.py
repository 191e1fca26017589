"""Heads' loss and accuracy as seed 001 describes, clip averaging, and a short fine-tune."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from inflate3d.slowfast import I3DHead, Recognizer3D, build_model, top_k_accuracy


def test_cross_entropy_and_top_k():
    head = I3DHead(6, 4)
    scores = torch.tensor([[5.0, 1, 0, 0, 0, 0], [0.0, 1, 2, 3, 4, 5], [1.0, 2, 3, 4, 5, 6]])
    labels = torch.tensor([0, 0, 5])
    out = head.loss(scores, labels)
    torch.testing.assert_close(out["loss_cls"], F.cross_entropy(scores, labels))
    assert out["top1_acc"].item() == pytest.approx(2 / 3)
    assert out["top5_acc"].item() == pytest.approx(2 / 3)  # row 1: label 0 is the 6th best


def test_label_smoothing_matches_the_definition():
    head = I3DHead(5, 4, label_smooth_eps=0.2)
    scores = torch.randn(3, 5)
    labels = torch.tensor([1, 4, 0])
    target = F.one_hot(labels, 5).float() * 0.8 + 0.2 / 5
    expected = -(target * F.log_softmax(scores, dim=1)).sum(1).mean()
    torch.testing.assert_close(head.loss(scores, labels)["loss_cls"], expected)


def test_multi_label_binary_cross_entropy_with_smoothing():
    head = I3DHead(4, 4, multi_class=True, label_smooth_eps=0.1, loss_weight=2.0)
    scores = torch.randn(2, 4)
    labels = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1]])
    target = labels * 0.9 + 0.1 / 4
    out = head.loss(scores, labels)
    assert set(out) == {"loss_cls"}
    torch.testing.assert_close(out["loss_cls"], 2.0 * F.binary_cross_entropy_with_logits(scores, target))


def test_top_k_caps_k_at_the_class_count():
    assert top_k_accuracy(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), (5,))[0].item() == 1.0


def test_average_clips():
    torch.manual_seed(0)
    model = build_model("slowonly_r18", num_classes=5, dropout_ratio=0.0).eval()
    clips = torch.randn(2, 3, 3, 2, 32, 32)
    raw = torch.stack([model(clips[:, i]) for i in range(3)], dim=1)
    model.average_clips = None
    torch.testing.assert_close(model.predict(clips), raw, atol=1e-5, rtol=1e-5)
    model.average_clips = "score"
    torch.testing.assert_close(model.predict(clips), raw.mean(1), atol=1e-5, rtol=1e-5)
    model.average_clips = "prob"
    torch.testing.assert_close(model.predict(clips), raw.softmax(2).mean(1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="average_clips"):
        Recognizer3D(model.backbone, model.cls_head, average_clips="max")


def test_fine_tuning_a_few_steps_lowers_the_loss():
    """A bootstrapped network can be trained at once: the head's loss drives SGD."""
    torch.manual_seed(0)
    model = build_model("slowfast_r50_8x8", num_classes=3, dropout_ratio=0.0,
                        slow_pathway={"depth": 50}).train()
    clips = torch.randn(6, 3, 8, 32, 32)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = model.loss(clips, labels)["loss_cls"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
