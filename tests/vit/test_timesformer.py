"""ViT -> TimeSformer: on a static 8-frame clip the class token is the ViT's, in the native network
and in Hugging Face's own TimesformerModel loaded from the folder; the proof can fail."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import TimesformerForVideoClassification, TimesformerModel

from inflate3d.io.safetensors_header import read_header
from inflate3d.slowfast.archs import build_model, get_arch
from inflate3d.vit import family

from vit_peers import CLASSES, HEADS, IMG, rel, run, vit_cls

FRAMES = 8


def _static(img: torch.Tensor) -> torch.Tensor:
    return img.unsqueeze(2).expand(-1, -1, FRAMES, -1, -1).contiguous()  # (B, C, T, H, W)


@pytest.mark.parametrize("arch", ["timesformer_b", "timesformer_b_spaceOnly"])
def test_native_class_token_equals_the_vits(vit_file, arch):
    vit, path = vit_file
    inf = family.prepare(str(path), get_arch(arch), method="mean", head="imagenet", seed=0)
    overrides = {k: v for k, v in json.loads(inf.metadata()["arch_overrides"]).items()}
    model = build_model(inf.arch, num_classes=CLASSES, **overrides).eval()
    model.load_state_dict(inf.state_dict(), strict=True)
    img = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert rel(model.backbone(_static(img)), vit_cls(vit, img)) < 1e-5
        assert rel(model(_static(img)), vit(img)) < 1e-5


def test_plan_zero_temporal_fc_and_time_embed_copy_of_spatial_attention(vit_file):
    _, path = vit_file
    sd = family.prepare(str(path), get_arch("timesformer_b"), method="mean", head=None, seed=0).state_dict()
    vit = load_file(path)
    layer = "backbone.transformer_layers.layers.1."
    assert not sd["backbone.time_embed"].any()
    assert not sd[layer + "attentions.0.temporal_fc.weight"].any() and not sd[layer + "attentions.0.temporal_fc.bias"].any()
    for a in (0, 1):
        assert torch.equal(sd[layer + f"attentions.{a}.attn.in_proj_weight"], vit["blocks.1.attn.qkv.weight"])
        assert torch.equal(sd[layer + f"attentions.{a}.norm.bias"], vit["blocks.1.norm1.bias"])
    assert torch.equal(sd[layer + "ffns.0.norm.weight"], vit["blocks.1.norm2.weight"])
    assert torch.equal(sd["backbone.pos_embed"], vit["pos_embed"])


def test_hugging_face_folder_reproduces_the_vit_and_a_nonzero_temporal_dense_breaks_it(vit_file, tmp_path):
    vit, path = vit_file
    out = tmp_path / "tsf"
    run("inflate", path, "--arch", "timesformer_b", "--head", "none", "--to", "huggingface", "-o", out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["TimesformerModel"] and cfg["hidden_act"] == "gelu"
    assert (cfg["layer_norm_eps"], cfg["qkv_bias"], cfg["num_frames"], cfg["image_size"]) == (1e-6, True, 8, IMG)
    assert cfg["num_attention_heads"] == HEADS and cfg["attention_type"] == "divided_space_time"
    model = TimesformerModel.from_pretrained(out).eval()
    img = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(6))
    clip = _static(img).transpose(1, 2)  # Hugging Face takes (B, T, C, H, W)
    want = vit_cls(vit, img)
    with torch.no_grad():
        assert rel(model(clip).last_hidden_state[:, 0], want) < 1e-5
        torch.nn.init.normal_(model.encoder.layer[0].temporal_dense.weight, std=0.02)
        assert rel(model(clip).last_hidden_state[:, 0], want) > 1e-3


def test_classifier_folder_keeps_the_vit_head(vit_file, tmp_path):
    vit, path = vit_file
    out = tmp_path / "tsf"
    run("inflate", path, "--arch", "timesformer_b", "--head", "imagenet", "--to", "huggingface", "-o", out)
    model = TimesformerForVideoClassification.from_pretrained(out).eval()
    img = torch.randn(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert rel(model(_static(img).transpose(1, 2)).logits, vit(img)) < 1e-5


def test_verify_fails_on_a_nonzero_temporal_fc_and_on_a_corrupted_kernel(vit_file, tmp_path):
    _, path = vit_file
    out = tmp_path / "tsf.safetensors"
    run("inflate", path, "--arch", "timesformer_b", "-o", out)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    good = load_file(out)
    assert "verified" in run("verify", out, "--against", path).output
    refused = run("verify", out, "--against", path, "--set", "num_heads=1", ok=(2,))  # it was dropped unsaid
    assert "--set num_heads: a vit checkpoint is verified with the settings its record holds" in refused.output
    for key, change in (("backbone.transformer_layers.layers.0.attentions.0.temporal_fc.weight", "temporal"),
                        ("backbone.transformer_layers.layers.1.ffns.0.layers.0.0.weight", "two percent")):
        bad = dict(good)
        bad[key] = torch.randn_like(good[key]) * 0.02 if change == "temporal" else good[key] * 1.02
        broken = tmp_path / f"{change}.safetensors"
        save_file(bad, broken, metadata=meta)
        result = run("verify", broken, "--against", path, "--json", ok=(1,))
        assert json.loads(result.stdout)["ok"] is False


@pytest.mark.parametrize("arch", ["timesformer_b", "timesformer_b_jointST"])
def test_schemes_round_trip_through_hugging_face_and_the_original_code(vit_file, tmp_path, arch):
    _, path = vit_file
    native = tmp_path / "native.safetensors"
    run("inflate", path, "--arch", arch, "-o", native)
    hf, orig, back = tmp_path / "hf", tmp_path / "orig.pth", tmp_path / "back.safetensors"
    run("convert", native, "--to", "huggingface", "-o", hf)
    run("convert", hf, "--to", "timesformer", "--format", "pth", "-o", orig)
    state = torch.load(orig, weights_only=True)["model_state"]
    assert ("model.blocks.0.temporal_attn.qkv.weight" in state) == (arch == "timesformer_b")
    assert "model.time_embed" in state and "model.blocks.1.mlp.fc2.bias" in state
    run("convert", orig, "-o", back)
    assert "equal" in run("diff", native, back).output
    assert "exactly the inflation" in run("diff", "--inflated", hf, path).output


def test_jointST_says_what_is_not_proven(vit_file, tmp_path):
    _, path = vit_file
    result = run("inflate", path, "--arch", "timesformer_b_jointST", "-o", tmp_path / "j.safetensors", "--json")
    ver = json.loads(result.stdout)["verification"]
    assert [c["name"] for c in ver["checks"]] == ["embedding"] and ver["passed"]
    assert any(n.startswith("NOT proven: joint space-time") for n in ver["caveats"])


def test_classifier_folder_converts_back_to_native(vit_file, tmp_path):
    _, path = vit_file
    native, hf, back = tmp_path / "n.safetensors", tmp_path / "hf", tmp_path / "b.safetensors"
    run("inflate", path, "--arch", "timesformer_b", "--head", "imagenet", "-o", native)
    run("convert", native, "--to", "huggingface", "-o", hf)
    keys = set(load_file(hf / "model.safetensors"))
    assert "timesformer.encoder.layer.0.temporal_dense.weight" in keys and "classifier.weight" in keys
    run("convert", hf, "-o", back)
    assert "equal" in run("diff", native, back).output


def test_position_embedding_resampled_like_timm_when_the_grid_differs(vit_file):
    from timm.layers import resample_abs_pos_embed

    vit, path = vit_file
    inf = family.prepare(str(path), get_arch("timesformer_b"), method="mean", head=None, seed=0, img_size=288)
    entry = next(e for e in inf.plan.entries if e.key == "backbone.pos_embed")
    assert entry.action == "resized (2D grid)" and entry.shape == (1, 82, 48)
    got = inf.state_dict()["backbone.pos_embed"]
    with torch.no_grad():
        want = resample_abs_pos_embed(vit.pos_embed, (9, 9), num_prefix_tokens=1)
    assert torch.allclose(got, want, rtol=0, atol=1e-6) and torch.equal(got[:, 0], vit.pos_embed[:, 0])
    ver = family.verify(inf.state_dict(), inf.arch, inf.source, method=None, origin="x", metadata=inf.metadata())
    assert ver.passed and any("resampled" in n for n in ver.notes)


def test_tubelet_methods_are_refused_for_timesformer(vit_file, tmp_path):
    _, path = vit_file
    result = run("inflate", path, "--arch", "timesformer_b", "--method", "arp", "-o", tmp_path / "x.safetensors", ok=(2,))
    assert "has no temporal kernel" in result.output and not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("attention", ["divided_space_time", "joint_space_time"])
def test_native_network_is_hugging_faces_on_a_moving_clip(tmp_path, attention):
    """Random weights everywhere (temporal ones included) and a random clip: the native network
    run on what `convert` makes of a real TimesformerModel folder gives TimesformerModel's output."""
    from transformers import TimesformerConfig

    from vit_peers import perturb

    cfg = TimesformerConfig(image_size=64, patch_size=16, num_frames=4, hidden_size=48, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=96, attention_type=attention)
    torch.manual_seed(4)
    hf = perturb(TimesformerModel(cfg), 4)
    hf.save_pretrained(tmp_path / "hf")
    native = tmp_path / "native.safetensors"
    run("convert", tmp_path / "hf", "-o", native)
    with safe_open(str(native), "pt") as f:
        arch = f.metadata()["arch"]
    model = build_model(arch, num_classes=None, img_size=64, num_frames=4, embed_dims=48, num_heads=4,
                        num_transformer_layers=2, feedforward_channels=96).eval()
    model.load_state_dict(load_file(native), strict=True)
    clip = torch.randn(2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        want = hf(clip.transpose(1, 2)).last_hidden_state[:, 0]
        assert rel(model(clip), want) < 1e-5


def test_diff_inflated_reads_the_video_file_one_tensor_at_a_time_and_sees_what_moved(vit_file, tmp_path, reads):
    """The TimeSformer is opened once and read tensor by tensor (never loaded whole: a ViT-L video
    file is over a gigabyte), each tensor's bytes once; a 2% change in one block shows in that block."""
    _, path = vit_file
    native = tmp_path / "ts.safetensors"
    run("inflate", path, "--arch", "timesformer_b", "-o", native, "--head", "imagenet")
    state = load_file(native)
    key = "backbone.transformer_layers.layers.1.attentions.1.attn.out_proj.weight"  # spatial: copied from 2D
    assert key in state
    state[key] = state[key] * 1.02
    moved = tmp_path / "moved.safetensors"
    save_file(state, moved, metadata=safe_open(str(native), "pt").metadata())
    opened, loads, got = reads
    data = json.loads(run("diff", "--inflated", moved, path, "--json", ok=(1,)).stdout)
    assert [g for g, s in data["stages"].items() if s["exact"] != s["tensors"]] == ["layer1"]
    assert data["stages"]["layer1"]["max_rel_change"] == pytest.approx(0.02, rel=1e-3)
    assert opened[str(moved)] == 1 and not loads[str(moved)]
    header = read_header(moved)[0]
    sizes = {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items()}
    read = {k: n for (p, k), n in got.items() if p == str(moved)}
    assert set(read) == {t["key"] for t in data["tensors"]}  # what has a 2D source; nothing else
    assert all(n == sizes[k] for k, n in read.items())  # each tensor's bytes, once
