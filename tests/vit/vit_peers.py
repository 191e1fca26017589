"""Helpers for the ViT-family tests: tiny seeded ViTs from the real peers (timm, torchvision, transformers), perturbed so that no
tensor keeps its default (LayerNorms included): zeros and ones would hide swapped names."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from inflate3d.cli import main

timm = pytest.importorskip("timm")
pytest.importorskip("transformers")

DIMS, DEPTH, HEADS, PATCH, IMG, CLASSES = 48, 2, 4, 32, 224, 10  # 7x7 patches: fast
GRID = (IMG // PATCH) ** 2


def perturb(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return module.eval()


def timm_vit(seed: int = 0, **kw):
    torch.manual_seed(seed)
    args = dict(img_size=IMG, patch_size=PATCH, embed_dim=DIMS, depth=DEPTH, num_heads=HEADS, num_classes=CLASSES)
    return perturb(timm.models.vision_transformer.VisionTransformer(**{**args, **kw}), seed)


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


def vit_cls(vit, img: torch.Tensor) -> torch.Tensor:
    """timm's normalised class token."""
    with torch.no_grad():
        return vit.forward_head(vit.forward_features(img), pre_logits=True)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())
