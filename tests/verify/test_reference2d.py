"""The verifier's 2D reference net is torchvision's ResNet, output for output, at every depth."""
from __future__ import annotations

import pytest
import torch
import torchvision

from inflate3d.verify.boring import build_2d


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_reference_net_equals_torchvision(depth, seeded):
    src = seeded(depth)
    ours = build_2d(src.tensors, depth)
    theirs = getattr(torchvision.models, f"resnet{depth}")()
    theirs.load_state_dict(src.tensors, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(depth))
    with torch.inference_mode():
        assert torch.equal(ours(x), theirs.eval()(x))
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_a_source_that_is_not_a_resnet_of_that_depth_is_refused(seeded):
    with pytest.raises(ValueError, match="does not fit a ResNet-34"):
        build_2d(seeded(18).tensors, 34)
