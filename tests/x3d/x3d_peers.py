"""Helpers for the X3D tests: pytorchvideo's own X3D networks (random weights, never downloaded)."""
from __future__ import annotations

import warnings

import pytest
import torch

warnings.filterwarnings("ignore", module="pytorchvideo")
pv_x3d = pytest.importorskip("pytorchvideo.models.x3d")

# pytorchvideo.models.hub.x3d: (input_clip_length, input_crop_size, depth_factor) of each hub model
HUB = {"x3d_xs": (4, 160, 2.2), "x3d_s": (13, 160, 2.2), "x3d_m": (16, 224, 2.2), "x3d_l": (16, 312, 5.0)}


def perturb_bn(model: torch.nn.Module, seed: int) -> None:
    """Give every BN distinct weights, biases and running statistics (fresh ones are 1, 0, 0, 1,
    which would hide a wrong fold or a swapped BN)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(7)


def tiny_pv(name: str, frames: int, size: int = 32, seed: int = 0) -> torch.nn.Module:
    """pytorchvideo's create_x3d with the hub's depth for ``name``, built for frames x size x size
    clips (its head pools with a kernel fixed by the clip), random weights, BNs perturbed, eval."""
    torch.manual_seed(seed)
    model = pv_x3d.create_x3d(input_clip_length=frames, input_crop_size=size, depth_factor=HUB[name][2])
    perturb_bn(model, seed + 1)
    return model.eval()


def pv_logits(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores before pytorchvideo's head softmax, its output): the projection's output is read
    with a forward hook on pytorchvideo's own module."""
    seen = {}
    handle = model.blocks[5].proj.register_forward_hook(lambda _m, _i, out: seen.setdefault("proj", out))
    try:
        with torch.no_grad():
            probs = model(x)
    finally:
        handle.remove()
    return seen["proj"].flatten(1), probs


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()
