"""The native networks of the ResNet zoo have mmaction2's own state-dict keys, in order, shape for
shape (lists measured from mmaction2 1.2.0's registry builds)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from inflate3d.slowfast.archs import build_model

REF = json.loads(gzip.open(Path(__file__).parents[1] / "data" / "mmaction2_more_resnets.json.gz", "rt").read())["configs"]

ARCH_OF = {  # mmaction2 config -> inflate3d architecture
    "r2plus1d/r2plus1d_r34_8xb8-8x8x1-180e_kinetics400-rgb.py": "r2plus1d_r34",
    "c2d/c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb.py": "c2d_r50",
    "csn/ircsn_ig65m-pretrained-r152_8xb12-32x2x1-58e_kinetics400-rgb.py": "ircsn_r152",
    "csn/ipcsn_ig65m-pretrained-r152-bnfrozen_32x2x1-58e_kinetics400-rgb.py": "ipcsn_r152",
    "i3d/i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb.py": "i3d_r50_nl_dot_product",
}


@pytest.mark.parametrize("config", list(ARCH_OF))
def test_native_keys_equal_mmaction2_key_for_key(config):
    ref = [(k, tuple(s)) for k, s in REF[config]["state_dict"]]
    model = build_model(ARCH_OF[config], num_classes=REF[config]["cls_head"]["num_classes"], device="meta",
                        init=False)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == ref
