"""The native TimeSformer is mmaction2's, key for key and shape for shape; the archs are registered."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inflate3d.slowfast.archs import get_arch, state_dict_shapes

DATA = Path(__file__).parents[1] / "data" / "mmaction2_timesformer_state_dicts.json"
CONFIGS = {"timesformer_b": "divST", "timesformer_b_jointST": "jointST", "timesformer_b_spaceOnly": "spaceOnly"}


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_timesformer_b_matches_mmaction2_key_for_key(arch):
    configs = json.loads(DATA.read_text())["configs"]
    cfg = next(v for k, v in configs.items() if f"timesformer_{CONFIGS[arch]}_" in k)
    expected = [(k, tuple(s)) for k, s in cfg["state_dict"]]
    assert list(state_dict_shapes(arch, num_classes=cfg["cls_head"]["num_classes"]).items()) == expected
    backbone = get_arch(arch).backbone
    for key in ("num_frames", "img_size", "patch_size", "embed_dims", "attention_type"):
        assert backbone[key] == cfg["backbone"][key]


def test_vivit_b_has_hugging_face_names():
    shapes = state_dict_shapes("vivit_b", num_classes=400)
    assert shapes["backbone.embeddings.patch_embeddings.projection.weight"] == (768, 3, 2, 16, 16)
    assert shapes["backbone.embeddings.position_embeddings"] == (1, 16 * 196 + 1, 768)
    assert shapes["backbone.encoder.layer.11.attention.attention.value.weight"] == (768, 768)
    assert shapes["cls_head.fc_cls.weight"] == (400, 768)
