"""A space-only TimeSformer as its original code saves it (facebookresearch/TimeSformer: a timm ViT's
names under ``model.``, inside PySlowFast's ``{'model_state', 'cfg'}``) is read as the TimeSformer
it is when its cfg, ``--from timesformer`` or the recorded architecture says so, and its mmaction2
conversion computes what the original code computes: the ViT on every frame, the token sequences
averaged over frames, then the final norm, the class token and the head. A ``.pth`` in the original
names gives what its own record holds (the head count)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from inflate3d.slowfast.archs import build_model

from vit_peers import IMG, perturb, rel, run, timm_vit

DIMS, HEADS, CLASSES, FRAMES = 128, 2, 7, 4  # 64-wide heads: what a file without a record is assumed to have
CFG = ("DATA:\n  NUM_FRAMES: 16\n  TRAIN_CROP_SIZE: 224\nMODEL:\n  MODEL_NAME: vit_base_patch16_224\n"
       "  NUM_CLASSES: 7\nTIMESFORMER:\n  ATTENTION_TYPE: space_only\n  PRETRAINED_MODEL: ''\n")


@pytest.fixture(scope="module")
def vit():
    return timm_vit(3, embed_dim=DIMS, num_heads=HEADS, num_classes=CLASSES)


def _original(vit, path, cfg: str | None):
    state = {"epoch": 15, "model_state": {f"model.{k}": v for k, v in vit.state_dict().items()},
             "optimizer_state": {"state": {}, "param_groups": []}}
    torch.save(state if cfg is None else {**state, "cfg": cfg}, path)
    return path


def _original_forward(vit, clip: torch.Tensor) -> torch.Tensor:
    """The original code's space-only forward (``vit.py``: blocks on (B T) frames, mean over T,
    norm, class token, head), from timm's own modules."""
    b, c, t, h, w = clip.shape
    x = vit.patch_embed(clip.transpose(1, 2).reshape(b * t, c, h, w))
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))
    x = vit.blocks(x)
    x = vit.norm(x.view(b, t, *x.shape[1:]).mean(1))
    return vit.head(x[:, 0])


def _forward(path, clip: torch.Tensor) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    model = build_model(meta["arch"], num_classes=CLASSES, **json.loads(meta["arch_overrides"])).eval()
    model.load_state_dict(load_file(path), strict=True)
    with torch.no_grad():
        return model(clip)


def test_the_cfg_says_timesformer_and_the_conversion_computes_the_original(vit, tmp_path):
    path = _original(vit, tmp_path / "space_only.pyth", CFG)
    doc = json.loads(run("inspect", path, "--json").output)
    assert doc["scheme"] == "timesformer" and doc["prefix"] == "model."
    assert doc["architecture"]["matches"] == "timesformer_b_spaceOnly"
    assert doc["architecture"]["head_classes"] == CLASSES and doc["architecture"]["attention_type"] == "space_only"
    assert doc["architecture"]["num_frames"] == 16  # the cfg's: the weights of a space-only net do not say
    assert "num_frames=16 as the checkpoint cfg records (DATA.NUM_FRAMES)" in doc["architecture"]["notes"]
    run("convert", path, "-o", tmp_path / "mm.safetensors")  # no --from: the cfg says what it is
    clip = torch.randn(2, 3, FRAMES, IMG, IMG, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        want = _original_forward(vit, clip)
        frame0 = vit(clip[:, :, 0])
    got = _forward(tmp_path / "mm.safetensors", clip)
    assert rel(got, want) < 1e-5
    assert rel(got, frame0) > 1e-2  # the frames differ: a net that saw one frame would fail


def test_without_a_cfg_it_is_a_vit_until_from_timesformer_says_otherwise(vit, tmp_path):
    path = _original(vit, tmp_path / "space_only.pyth", None)
    doc = json.loads(run("inspect", path, "--json").output)
    assert doc["scheme"] == "timm-vit" and doc["architecture"]["family"] == "2D ViT"
    assert any("--from timesformer" in n for n in doc["architecture"]["notes"])
    refused = run("convert", path, "-o", tmp_path / "no.safetensors", ok=(2,))
    assert "--from timesformer" in refused.output and not (tmp_path / "no.safetensors").exists()
    assert json.loads(run("inspect", path, "--from", "timesformer", "--json").output)["architecture"]["matches"] \
        == "timesformer_b_spaceOnly"
    run("convert", path, "--from", "timesformer", "-o", tmp_path / "mm.safetensors")
    with_cfg = _original(vit, tmp_path / "with_cfg.pyth", CFG)
    run("convert", with_cfg, "-o", tmp_path / "mm_cfg.safetensors")
    a, b = load_file(tmp_path / "mm.safetensors"), load_file(tmp_path / "mm_cfg.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a plain 2D ViT file (no model. wrapper) gets no such hint
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "vit.safetensors")
    doc = json.loads(run("inspect", tmp_path / "vit.safetensors", "--json").output)
    assert not any("--from timesformer" in n for n in doc["architecture"]["notes"])


def test_mmaction2_to_the_original_names_and_back_without_flags(tmp_path):
    """The original names of a space-only TimeSformer are a ViT's: the file written in them records
    its architecture, and converts back by it (its proof read it as a 2D ViT and failed before)."""
    torch.manual_seed(0)
    native = perturb(build_model("timesformer_b_spaceOnly", num_classes=CLASSES, img_size=64, patch_size=16,
                                 embed_dims=DIMS, num_heads=HEADS, num_transformer_layers=2), 4).state_dict()
    save_file({k: v.contiguous() for k, v in native.items()}, tmp_path / "mm.safetensors")
    run("convert", tmp_path / "mm.safetensors", "--to", "timesformer", "-o", tmp_path / "orig.pth")
    assert json.loads(run("inspect", tmp_path / "orig.pth", "--json").output)["scheme"] == "timesformer"
    run("convert", tmp_path / "orig.pth", "-o", tmp_path / "back.safetensors")
    back = load_file(tmp_path / "back.safetensors")
    assert list(back) == list(native) and all(torch.equal(back[k], native[k]) for k in native)


def test_from_naming_another_scheme_is_refused(vit_file):
    _, path = vit_file
    result = run("inspect", path, "--from", "pyslowfast", ok=(2,))
    assert "--from pyslowfast, but its keys are timm-vit's" in result.output


def test_a_pth_s_own_record_gives_the_heads(tmp_path):
    """The head count is not in the weights: a ``.pth`` written in the original names records it (its
    inflate3d entry), and inspect and convert read it there; they assumed 64-wide heads before, and
    the conversion back computed something else."""
    torch.manual_seed(0)
    native = perturb(build_model("timesformer_b", num_classes=CLASSES, img_size=32, patch_size=16, embed_dims=64,
                                 num_heads=2, num_transformer_layers=1, num_frames=FRAMES), 5)
    save_file({k: v.contiguous() for k, v in native.state_dict().items()}, tmp_path / "mm.safetensors",
              metadata={"num_heads": "2"})
    run("convert", tmp_path / "mm.safetensors", "--to", "timesformer", "-o", tmp_path / "orig.pth")
    arch = json.loads(run("inspect", tmp_path / "orig.pth", "--json").output)["architecture"]
    assert arch["num_heads"] == 2 and not any("heads" in n for n in arch["notes"])
    run("convert", tmp_path / "orig.pth", "-o", tmp_path / "back.safetensors")
    clip = torch.randn(1, 3, FRAMES, 32, 32, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        want = native.eval()(clip)
    assert rel(_forward(tmp_path / "back.safetensors", clip), want) < 1e-5
    one_head = build_model("timesformer_b", num_classes=CLASSES, img_size=32, patch_size=16, embed_dims=64,
                           num_heads=1, num_transformer_layers=1, num_frames=FRAMES).eval()
    one_head.load_state_dict(native.state_dict())
    with torch.no_grad():
        assert rel(one_head(clip), want) > 1e-3  # the heads matter: the check can fail


def test_set_states_what_the_file_does_not_and_is_never_ignored(tmp_path):
    """A file without a record: the heads are assumed (64-wide), which computes something else for
    32-wide heads; ``--set num_heads=2`` states them (it was ignored for this family). A setting the
    network has not, or cannot be built with, is refused (exit 2)."""
    torch.manual_seed(0)
    native = perturb(build_model("timesformer_b", num_classes=CLASSES, img_size=32, patch_size=16, embed_dims=64,
                                 num_heads=2, num_transformer_layers=1, num_frames=FRAMES), 6).eval()
    save_file({k: v.contiguous() for k, v in native.state_dict().items()}, tmp_path / "mm.safetensors")
    assert json.loads(run("inspect", tmp_path / "mm.safetensors", "--json").output)["architecture"]["num_heads"] == 1
    arch = json.loads(run("inspect", tmp_path / "mm.safetensors", "--set", "num_heads=2", "--json").output)["architecture"]
    assert arch["num_heads"] == 2 and "num_heads=2 as --set states" in arch["notes"]
    assert not any("assumed" in n and "heads" in n for n in arch["notes"])
    clip = torch.randn(1, 3, FRAMES, 32, 32, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        want = native(clip)
    run("convert", tmp_path / "mm.safetensors", "--to", "huggingface", "-o", tmp_path / "assumed")  # 1 head
    run("convert", tmp_path / "mm.safetensors", "--set", "num_heads=2", "-o", tmp_path / "stated.safetensors")
    assert rel(_forward(tmp_path / "stated.safetensors", clip), want) < 1e-5
    assert json.loads((tmp_path / "assumed" / "config.json").read_text())["num_attention_heads"] == 1
    for bad, words in (("num_heads=3", "cannot be built with these settings"), ("depth=3", "--set depth: not a setting")):
        result = run("convert", tmp_path / "mm.safetensors", "--set", bad, "-o", tmp_path / "bad.safetensors", ok=(2,))
        assert words in result.output and not (tmp_path / "bad.safetensors").exists()
