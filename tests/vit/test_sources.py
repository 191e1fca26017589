"""2D ViTs from timm, torchvision and Hugging Face: one canonical naming, checked by running the
real peers' own modules, and the same weights give the same inflated bytes in any format."""
from __future__ import annotations

import torch
import torchvision
from safetensors.torch import save_file
from transformers import ViTConfig, ViTModel

from inflate3d.slowfast.archs import get_arch
from inflate3d.vit import family
from inflate3d.vit.vit2d import canonical

from vit_peers import CLASSES, DEPTH, DIMS, HEADS, IMG, PATCH, perturb, rel, timm_vit, vit_cls


def _torchvision_vit(dims=DIMS, heads=HEADS):
    torch.manual_seed(1)
    net = torchvision.models.vision_transformer.VisionTransformer(
        image_size=IMG, patch_size=PATCH, num_layers=DEPTH, num_heads=heads, hidden_dim=dims, mlp_dim=4 * dims,
        num_classes=CLASSES)
    return perturb(net, 1)


def _hf_vit(dims=DIMS, heads=HEADS):
    torch.manual_seed(2)
    cfg = ViTConfig(image_size=IMG, patch_size=PATCH, hidden_size=dims, num_hidden_layers=DEPTH,
                    num_attention_heads=heads, intermediate_size=4 * dims, layer_norm_eps=1e-6, hidden_act="gelu")
    return perturb(ViTModel(cfg), 2)


def test_torchvision_names_map_onto_timm():
    tv = _torchvision_vit()
    canon, fmt, _ = canonical(tv.state_dict(), "tv")
    assert fmt == "torchvision"
    vit = timm_vit()
    vit.load_state_dict(canon, strict=True)
    img = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        assert rel(vit(img), tv(img)) < 1e-5


def test_hugging_face_names_and_fused_qkv_map_onto_timm(tmp_path):
    hf = _hf_vit()
    hf.save_pretrained(tmp_path / "hf")  # the on-disk names (encoder.layer.i.attention.attention.query)
    src = family.prepare(str(tmp_path / "hf"), get_arch("timesformer_b"), method="mean", head=None, seed=0).source
    assert src.info.format == "huggingface" and src.info.num_heads == HEADS  # from config.json
    vit = timm_vit(num_classes=0)
    vit.load_state_dict(src.tensors, strict=True)
    img = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        assert rel(vit_cls(vit, img), hf(img).last_hidden_state[:, 0]) < 1e-5


def test_same_weights_in_three_formats_give_the_same_bytes(tmp_path):
    """torchvision's weights, saved as torchvision, as timm and as a Hugging Face folder (64-wide
    heads, so the head count follows the ViT convention where the file does not record it)."""
    tv = _torchvision_vit(dims=128, heads=2)
    tv_path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), tv_path)
    canon, _, _ = canonical(tv.state_dict(), "tv")
    timm_path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in canon.items() if not k.startswith("head.")}, timm_path)
    hf = _hf_vit(dims=128, heads=2)  # the same weights, placed by hand in Hugging Face's own modules
    with torch.no_grad():
        e = hf.embeddings
        e.cls_token.copy_(canon["cls_token"]), e.position_embeddings.copy_(canon["pos_embed"])
        e.patch_embeddings.projection.weight.copy_(canon["patch_embed.proj.weight"])
        e.patch_embeddings.projection.bias.copy_(canon["patch_embed.proj.bias"])
        for i, layer in enumerate(hf.layers):
            b = f"blocks.{i}."
            for t in ("weight", "bias"):
                q, k, v = canon[b + f"attn.qkv.{t}"].chunk(3)
                getattr(layer.attention.q_proj, t).copy_(q), getattr(layer.attention.k_proj, t).copy_(k)
                getattr(layer.attention.v_proj, t).copy_(v)
                getattr(layer.attention.o_proj, t).copy_(canon[b + f"attn.proj.{t}"])
                getattr(layer.layernorm_before, t).copy_(canon[b + f"norm1.{t}"])
                getattr(layer.layernorm_after, t).copy_(canon[b + f"norm2.{t}"])
                getattr(layer.mlp.fc1, t).copy_(canon[b + f"mlp.fc1.{t}"])
                getattr(layer.mlp.fc2, t).copy_(canon[b + f"mlp.fc2.{t}"])
            hf.layernorm.weight.copy_(canon["norm.weight"]), hf.layernorm.bias.copy_(canon["norm.bias"])
    hf.save_pretrained(tmp_path / "hf")
    outputs = []
    for src in (timm_path, tv_path, tmp_path / "hf"):
        inf = family.prepare(str(src), get_arch("timesformer_b"), method="mean", head=None, seed=0)
        outputs.append(inf.state_dict())
    assert len({tuple(o) for o in outputs}) == 1  # the same keys, in the same order
    for key in outputs[0]:
        a = outputs[0][key]
        for other in outputs[1:]:
            assert a.dtype == other[key].dtype and a.shape == other[key].shape
            assert bytes(a.contiguous().view(torch.uint8).flatten().tolist()) == \
                bytes(other[key].contiguous().view(torch.uint8).flatten().tolist()), key


def test_vit_for_image_classification_keeps_its_head(tmp_path):
    from transformers import ViTForImageClassification

    hf = _hf_vit()
    torch.manual_seed(3)
    clf = ViTForImageClassification(hf.config.__class__(**{**hf.config.to_dict(), "num_labels": CLASSES}))
    perturb(clf, 3).save_pretrained(tmp_path / "clf")
    src = family.prepare(str(tmp_path / "clf"), get_arch("timesformer_b"), method="mean", head="imagenet",
                         seed=0).source
    assert src.info.num_classes == CLASSES
    vit = timm_vit()
    vit.load_state_dict(src.tensors, strict=True)
    img = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        assert rel(vit(img), clf(img).logits) < 1e-5


def test_a_live_transformers_5_state_dict_is_the_same_source_as_its_saved_folder(tmp_path):
    """transformers >= 5 names a ViT's modules differently in memory (``layers.i.attention.q_proj``,
    ``mlp.fc1``) than ``save_pretrained`` writes them (``encoder.layer.i.attention.attention.query``):
    a ``torch.save(model.state_dict())`` from a training script is read as the same weights."""
    from transformers import ViTForImageClassification

    hf = _hf_vit()
    torch.manual_seed(3)
    clf = perturb(ViTForImageClassification(hf.config.__class__(**{**hf.config.to_dict(), "num_labels": CLASSES})), 3)
    live = clf.state_dict()
    assert "vit.layers.0.attention.q_proj.weight" in live  # the names this test is about
    clf.save_pretrained(tmp_path / "clf")
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "clf" / "model.safetensors"))
    assert "vit.encoder.layer.0.attention.attention.query.weight" in saved
    canon_live, fmt_live, notes_live = canonical(live, "live")
    canon_saved, fmt_saved, _ = canonical(saved, "saved")
    assert fmt_live == fmt_saved == "huggingface" and list(canon_live) == list(canon_saved)
    for k in canon_saved:
        assert torch.equal(canon_live[k], canon_saved[k]), k
    vit = timm_vit()
    vit.load_state_dict(canon_live, strict=True)
    img = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        assert rel(vit(img), clf(img).logits) < 1e-5


def test_the_cli_inflates_a_live_state_dict_and_a_folder_alike(tmp_path):
    """``inflate3d inflate`` takes a Hugging Face folder as its source (it refused folders), and a
    transformers-5 state dict saved with torch.save (it was "not a 2D ViT"); ``inspect`` names
    both, ``vit.`` prefix and all (it could not tell their scheme)."""
    import json

    from transformers import ViTForImageClassification

    from vit_peers import run

    hf = _hf_vit(dims=128, heads=2)  # 64-wide heads: the live state dict's head count follows the convention
    torch.manual_seed(3)
    clf = perturb(ViTForImageClassification(hf.config.__class__(**{**hf.config.to_dict(), "num_labels": CLASSES})), 3)
    clf.save_pretrained(tmp_path / "clf")
    torch.save(clf.state_dict(), tmp_path / "live.pth")
    outs = []
    for src in (tmp_path / "clf", tmp_path / "live.pth"):
        info = json.loads(run("inspect", src, "--json").stdout)
        assert info["scheme"] == "huggingface" and info["architecture"]["family"] == "2D ViT", info
        assert info["architecture"]["head_classes"] == CLASSES
        out = tmp_path / f"{src.stem}.safetensors"
        run("inflate", src, "--arch", "timesformer_b", "--head", "imagenet", "-o", out)  # verified
        outs.append(out)
    # the same weights, the same tensors (the folder's config.json also names the head count,
    # which the live state dict leaves to the 64-wide convention: only the metadata differs)
    from safetensors.torch import load_file

    a, b = (load_file(str(p)) for p in outs)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
