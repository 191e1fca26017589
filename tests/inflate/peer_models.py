"""Peer models made to show their maths: every BN with non-trivial statistics and affine terms."""
from __future__ import annotations

import torch


def randomise_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every BN non-trivial statistics and affine terms, so equal outputs mean equal maths."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model.eval()
