"""ViT -> ViViT: scenic's tubelet kernels (ARP coefficients by hand), folders that VivitModel loads,
and the one exact fact: a static clip's tubelet embedding is the ViT's patch embedding + position at
every tubelet step (mean, center); ARP embeds a static clip to its bias."""
from __future__ import annotations

import json
from fractions import Fraction as F

import pytest
import torch
from transformers import VivitModel

from inflate3d.vit.kernels import arp_coefficients, tubelet_kernel, tubelet_weights

from vit_peers import DIMS, GRID, HEADS, IMG, PATCH, rel, run


@pytest.mark.parametrize("t, expected", [
    (2, [F(-1, 2), F(1, 2)]),                                # H2 = 3/2
    (3, [F(-4, 3), F(2, 3), F(2, 3)]),                       # H3 = 11/6
    (4, [F(-29, 12), F(7, 12), F(13, 12), F(3, 4)]),         # H4 = 25/12
])
def test_arp_coefficients_by_hand(t, expected):
    assert arp_coefficients(t) == expected
    w = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    k = tubelet_kernel(w, t, "arp")
    for j, a in enumerate(expected):
        assert torch.allclose(k[:, :, j], w * float(a) / t, rtol=0, atol=1e-15)


def test_mean_and_center_kernels():
    w = torch.randn(6, 3, 4, 4)
    assert torch.equal(tubelet_kernel(w, 2, "mean"), torch.stack([w / 2, w / 2], 2))
    assert torch.equal(tubelet_kernel(w, 3, "center"), torch.stack([0 * w, w, 0 * w], 2))
    assert tubelet_weights(2, "center") == [0.0, 1.0]


@pytest.mark.parametrize("method", ["mean", "center", "arp"])
def test_vivit_folder_loads_and_embeds_a_static_clip_like_the_vit(vit_file, tmp_path, method):
    vit, path = vit_file
    out = tmp_path / method
    result = run("inflate", path, "--arch", "vivit_b", "--method", method, "--to", "huggingface", "-o", out, "--json")
    assert json.loads(result.stdout)["verification"]["passed"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hidden_act"] == "gelu" and cfg["layer_norm_eps"] == 1e-6 and cfg["qkv_bias"] is True
    assert (cfg["num_frames"], cfg["image_size"], cfg["tubelet_size"]) == (32, IMG, [2, PATCH, PATCH])
    assert (cfg["hidden_size"], cfg["num_attention_heads"]) == (DIMS, HEADS)
    model = VivitModel.from_pretrained(out, add_pooling_layer=False).eval()
    img = torch.randn(1, 3, IMG, IMG, generator=torch.Generator().manual_seed(8))
    clip = img.unsqueeze(1).expand(-1, 32, -1, -1, -1)  # (B, T, C, H, W)
    with torch.no_grad():
        got = model.embeddings(clip)  # (1, 1 + 16 * GRID, D), tubelet-step major
        patches = vit.patch_embed(img)  # timm's own patch embedding, (1, GRID, D)
        pos = vit.pos_embed
        bias = vit.patch_embed.proj.bias
    steps = got[0, 1:].reshape(16, GRID, -1)
    assert rel(got[:, 0], vit.cls_token[:, 0] + pos[:, 0]) == 0
    want = (patches if method != "arp" else bias.expand_as(patches)) + pos[:, 1:]
    scale = float((patches + pos[:, 1:]).abs().max())  # arp: float32 sums of +-w/2 cancel to ~1e-6 of this
    for s in range(16):
        assert float((steps[s] - want[0]).abs().max()) / scale < 1e-5, s
    assert "exactly the inflation" in run("diff", "--inflated", out, path).output


def test_vivit_has_no_mmaction2_names(vit_file, tmp_path):
    _, path = vit_file
    native = tmp_path / "v.safetensors"
    run("inflate", path, "--arch", "vivit_b", "-o", native)
    result = run("convert", native, "--to", "timesformer", "-o", tmp_path / "x.safetensors", ok=(2,))
    assert "Hugging Face names only" in result.output


def test_verify_reads_the_folder_and_fails_on_a_two_percent_tubelet_error(vit_file, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    _, path = vit_file
    out = tmp_path / "mean"
    run("inflate", path, "--arch", "vivit_b", "--method", "mean", "--to", "huggingface", "-o", out)
    assert "verified" in run("verify", out, "--against", path).output
    weights = out / "model.safetensors"
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    tensors = load_file(weights)
    key = "embeddings.patch_embeddings.projection.weight"
    tensors[key] = tensors[key].clone()
    tensors[key][:, :, 0] *= 1.02
    save_file(tensors, weights, metadata=meta)
    result = run("verify", out, "--against", path, "--json", ok=(1,))
    assert json.loads(result.stdout)["ok"] is False


def test_native_vivit_is_hugging_faces_on_a_moving_clip(tmp_path):
    """A real VivitModel (random weights, its default gelu_fast) -> convert -> the native network."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import VivitConfig

    from inflate3d.slowfast.archs import build_model
    from vit_peers import perturb

    cfg = VivitConfig(image_size=64, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=48, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=96)
    torch.manual_seed(5)
    hf = perturb(VivitModel(cfg, add_pooling_layer=False), 5)
    hf.save_pretrained(tmp_path / "hf")
    native = tmp_path / "native.safetensors"
    run("convert", tmp_path / "hf", "-o", native)
    with safe_open(str(native), "pt") as f:
        assert f.metadata()["arch"] == "vivit_b"
    model = build_model("vivit_b", num_classes=None, image_size=64, num_frames=4, hidden_size=48,
                        num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                        hidden_act="gelu_fast").eval()
    model.load_state_dict(load_file(native), strict=True)
    clip = torch.randn(2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        assert rel(model(clip), hf(clip.transpose(1, 2)).last_hidden_state[:, 0]) < 1e-5
    back = tmp_path / "back"  # the native file records the geometry and activation its weights lack
    run("convert", native, "--to", "huggingface", "-o", back)
    config = json.loads((back / "config.json").read_text())
    assert (config["num_frames"], config["image_size"], config["hidden_act"]) == (4, 64, "gelu_fast")


def test_a_live_transformers_5_vivit_state_dict_converts_as_its_saved_folder(tmp_path):
    """transformers >= 5 keeps ViViT's modules under other names in memory
    (``layers.i.attention.q_proj``) than ``save_pretrained`` writes: a ``torch.save`` of
    ``state_dict()`` converts to the same native tensors as the folder, and its round trip is
    proven under the names it maps to (it was 'not a TimeSformer or ViViT checkpoint')."""
    from safetensors.torch import load_file
    from transformers import VivitConfig

    from vit_peers import perturb

    cfg = VivitConfig(image_size=64, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=1, intermediate_size=96, hidden_act="gelu", layer_norm_eps=1e-6)
    torch.manual_seed(6)
    hf = perturb(VivitModel(cfg, add_pooling_layer=False), 6)
    live = hf.state_dict()
    assert "layers.0.attention.q_proj.weight" in live  # the names this test is about
    hf.save_pretrained(tmp_path / "hf")
    torch.save(live, tmp_path / "live.pth")
    outs = []
    for src in (tmp_path / "hf", tmp_path / "live.pth"):
        out = tmp_path / f"{src.stem}.safetensors"
        result = run("convert", src, "-o", out)
        assert "converts back to huggingface bit for bit (38 tensors)" in result.stdout + result.stderr
        outs.append(load_file(str(out)))
    assert "read 32 names as transformers 5 keeps them in memory" in result.stdout + result.stderr
    a, b = outs
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(run("inspect", tmp_path / "live.pth", "--json").stdout)["architecture"]["matches"] == "vivit_b"
