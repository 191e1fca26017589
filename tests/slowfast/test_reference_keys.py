"""The native networks' state dicts equal mmaction2 1.2.0's: every key, in order, every shape."""
from __future__ import annotations

import pytest

import torch

from inflate3d.slowfast import ResNet3d, build_model, count_parameters


def _on_meta(cls, *args, **kwargs):
    with torch.device("meta"):
        return cls(*args, **kwargs)


CASES = {
    "slowfast_r50_4x16": lambda: build_model("slowfast_r50_4x16", device="meta"),
    "slowfast_r50_8x8": lambda: build_model("slowfast_r50_8x8", device="meta"),
    "slowfast_r50_8x8+lateral_norm": lambda: build_model("slowfast_r50_8x8", device="meta",
                                                         slow_pathway={"lateral_norm": True}),
    "slowonly_r50": lambda: build_model("slowonly_r50", device="meta"),
    "i3d_r50": lambda: build_model("i3d_r50", device="meta"),
    **{f"resnet3d_r{d}_defaults": (lambda d=d: _on_meta(ResNet3d, d)) for d in (18, 34, 50, 101, 152)},
    "tsm_r50": lambda: build_model("tsm_r50", device="meta"),
    "tsm_r101": lambda: build_model("tsm_r101", device="meta"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_keys_order_shapes_and_parameters_equal_mmaction2(name, mmaction2_reference):
    ref = mmaction2_reference[name]
    model = CASES[name]()
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert got == ref["keys"]
    assert len(got) == ref["entries"]
    assert count_parameters(model) == ref["parameters"]


def test_every_reference_arch_is_covered(mmaction2_reference):
    assert set(mmaction2_reference) == set(CASES)


def test_issue_reference_figures():
    model = build_model("slowfast_r50_4x16", device="meta")
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    backbone = [k for k in sd if k.startswith("backbone.")]
    assert len(backbone) == 640
    assert count_parameters(model.backbone) == 33_557_288
    assert count_parameters(model.cls_head) == 922_000
    assert sd["cls_head.fc_cls.weight"] == (400, 2304)
    assert sd["backbone.slow_path.layer1.0.conv1.conv.weight"] == (64, 80, 1, 1, 1)
    assert sd["backbone.slow_path.layer3.0.conv1.conv.weight"] == (256, 640, 3, 1, 1)
    assert sd["backbone.slow_path.conv1_lateral.conv.weight"] == (16, 8, 5, 1, 1)
    assert sd["backbone.slow_path.layer3_lateral.conv.weight"] == (256, 128, 5, 1, 1)
    assert sd["backbone.fast_path.conv1.conv.weight"] == (8, 3, 5, 7, 7)
    norm = build_model("slowfast_r50_4x16", device="meta", num_classes=None,
                       slow_pathway={"lateral_norm": True})
    assert len(norm.state_dict()) == 660
    assert count_parameters(_on_meta(ResNet3d, 50)) == 32_185_792
    slow = build_model("slowonly_r50", device="meta", num_classes=None)
    assert len(slow.state_dict()) == 318 and count_parameters(slow) == 31_634_496
