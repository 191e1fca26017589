"""``inflate3d inspect`` of a TimeSformer or ViViT (mmaction2, Hugging Face file or folder, the
original TimeSformer names) or of a 2D ViT (timm, torchvision, Hugging Face) reads the structure
alone, without importing torch, and says exactly what the loaded tensors say (the
``inspect_without_torch`` fixture runs the real command in a subprocess). The architecture's
shapes are computed from its settings (``vit.shapes``), which must equal a meta build's."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from safetensors.torch import save_file
from vit_peers import CLASSES, DEPTH, DIMS, HEADS, IMG, PATCH, perturb, run, timm_vit

from inflate3d import build_model
from inflate3d.slowfast.archs import get_arch
from inflate3d.vit import family, shapes

SMALL = {  # (arch, small overrides, the schemes its files come in)
    "timesformer_b": (dict(img_size=32, embed_dims=64, num_heads=2, num_transformer_layers=2,
                           feedforward_channels=128), ("mmaction2", "huggingface", "timesformer")),
    "timesformer_b_jointST": (dict(img_size=32, patch_size=8, embed_dims=48, num_heads=3, num_transformer_layers=1,
                                   num_frames=4), ("mmaction2", "huggingface", "timesformer")),
    "timesformer_b_spaceOnly": (dict(img_size=32, embed_dims=64, num_heads=2, num_transformer_layers=2),
                                ("mmaction2", "huggingface")),  # in the original names: a timm ViT's
    "vivit_b": (dict(num_frames=4, image_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128), ("mmaction2", "huggingface")),
}


def _native(arch, overrides, num_classes=5):
    torch.manual_seed(0)
    model = perturb(build_model(arch, num_classes=num_classes, **overrides), 0)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", list(SMALL))
def test_every_scheme_is_described_without_torch(tmp_path, inspect_without_torch, arch):
    overrides, schemes = SMALL[arch]
    for num_classes in (5, None):
        native = _native(arch, overrides, num_classes)
        for scheme in schemes:
            tensors = native if scheme == "mmaction2" else \
                family.convert(native, source=None, target=scheme, origin="x", arch=arch).tensors
            path = tmp_path / f"{scheme}-{num_classes}.safetensors"
            save_file({k: v.contiguous() for k, v in tensors.items()}, path)
            doc = inspect_without_torch(path)
            assert doc["scheme"] == scheme and doc["family"] == "vit", (scheme, num_classes)
            assert doc["architecture"]["matches"] == arch and doc["architecture"]["head_classes"] == num_classes


def test_a_hugging_face_folder_and_a_pth_are_described_without_torch(tmp_path, inspect_without_torch):
    arch = "timesformer_b"
    overrides, _ = SMALL[arch]
    save_file(_native(arch, overrides), tmp_path / "mm.safetensors", metadata={"num_heads": "2"})
    run("convert", tmp_path / "mm.safetensors", "--to", "huggingface", "-o", tmp_path / "hf")
    doc = inspect_without_torch(tmp_path / "hf")  # its config.json is read, without torch
    assert doc["container"] == "huggingface folder" and doc["architecture"]["num_heads"] == 2
    torch.save({"state_dict": _native(arch, overrides), "meta": {}}, tmp_path / "mm.pth")
    assert inspect_without_torch(tmp_path / "mm.pth")["architecture"]["matches"] == arch


def test_2d_vits_of_every_codebase_are_described_without_torch(tmp_path, inspect_without_torch):
    import torchvision
    from transformers import ViTConfig, ViTModel

    vit = timm_vit()
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "timm.safetensors",
              metadata={"num_heads": str(HEADS)})
    torch.manual_seed(1)
    tv = perturb(torchvision.models.vision_transformer.VisionTransformer(  # 64-wide heads: no record needed
        image_size=IMG, patch_size=PATCH, num_layers=DEPTH, num_heads=2, hidden_dim=128, mlp_dim=4 * DIMS,
        num_classes=CLASSES), 1)
    torch.save(tv.state_dict(), tmp_path / "torchvision.pth")
    cfg = ViTConfig(image_size=IMG, patch_size=PATCH, hidden_size=DIMS, num_hidden_layers=DEPTH,
                    num_attention_heads=HEADS, intermediate_size=4 * DIMS, num_labels=CLASSES)
    torch.manual_seed(2)
    hf = perturb(ViTModel(cfg), 2)  # q, k and v apart: concatenated on shape records; a pooler
    hf.save_pretrained(tmp_path / "huggingface")  # the on-disk names, and config.json
    for name, scheme in (("timm.safetensors", "timm-vit"), ("torchvision.pth", "torchvision-vit"),
                         ("huggingface", "huggingface")):
        doc = inspect_without_torch(tmp_path / name)
        arch = doc["architecture"]
        assert doc["scheme"] == scheme and arch["family"] == "2D ViT", name
        dims, classes = (128 if name.startswith("torchvision") else DIMS), (None if scheme == "huggingface" else CLASSES)
        assert (arch["embed_dims"], arch["depth"], arch["head_classes"]) == (dims, DEPTH, classes), name


GRID = {
    "timesformer": [{}, dict(img_size=32, embed_dims=64, num_heads=2, num_transformer_layers=2, feedforward_channels=128),
                    dict(num_frames=4, patch_size=8, img_size=40, feedforward_channels=None, in_channels=1,
                         embed_dims=48, num_heads=3, num_transformer_layers=1, norm_eps=1e-5)],
    "vivit": [{}, dict(num_frames=4, image_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=128),
              dict(tubelet_size=[1, 8, 4], in_channels=2, hidden_act="gelu_fast", num_frames=3, image_size=36,
                   hidden_size=30, num_attention_heads=4, num_hidden_layers=1)],
}


@pytest.mark.parametrize("name", ["timesformer_b", "timesformer_b_jointST", "timesformer_b_spaceOnly", "vivit_b"])
def test_computed_shapes_are_a_builds(name):
    arch = get_arch(name)
    for num_classes, overrides in itertools.product((None, 7), GRID[arch.family]):
        want = build_model(arch, num_classes=num_classes, device="meta", init=False, **overrides).state_dict()
        got = shapes.state_dict_shapes(arch, num_classes, overrides)
        assert list(got.items()) == [(k, tuple(v.shape)) for k, v in want.items()], (name, num_classes, overrides)


@pytest.mark.parametrize("overrides", [dict(embed_dims=64, num_heads=3), dict(attention_type="nope"),
                                       dict(qkv_bias=False), dict(embed_dims=64.0), dict(num_frames=True)])
def test_what_only_a_build_can_tell_is_not_computed(overrides):
    """Heads that do not divide the width, an unknown attention or setting, a value of another
    type: no shapes are computed (the caller builds, and the network says what is wrong)."""
    assert shapes.state_dict_shapes(get_arch("timesformer_b"), 5, overrides) is None


def test_inferred_settings_are_those_a_build_confirms(tmp_path):
    """``infer`` checks the file against the computed shapes; a file they do not fit is refused."""
    overrides, _ = SMALL["timesformer_b"]
    native = _native("timesformer_b", overrides)
    arch, got, facts = family.infer(native, {}, "x")
    assert arch.name == "timesformer_b" and got == overrides | {"num_heads": 1} and facts.num_classes == 5
    native.pop("backbone.transformer_layers.layers.1.attentions.0.temporal_fc.bias")
    with pytest.raises(Exception, match="match no timesformer network"):
        family.infer(native, {}, "x")
    assert json.loads(json.dumps(facts.settings))  # plain settings
