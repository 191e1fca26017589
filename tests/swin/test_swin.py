"""Video Swin: native key lists, inflation from every 2D Swin codebase (bit for bit mmaction2's
``inflate_weights``), the static-clip proof against the real 2D peers, torchvision conversion."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inflate3d.errors import Inflate3dError
from inflate3d.slowfast.archs import build_model, get_arch
from inflate3d.swin import family
from inflate3d.swin.config import exact_lengths

from swin_models import OVERRIDES, SIZE, TINY, microsoft_form, mmaction2_inflate_weights, mmpretrain_form, perturb, timm_swin

DATA = Path(__file__).parents[1] / "data" / "mmaction2_swin_state_dicts.json"
ARCH = get_arch("swin3d_t")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def timm_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("swin2d")
    net = timm_swin()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, d / "timm.safetensors")
    ms = microsoft_form(net)
    torch.save({"model": ms}, d / "microsoft.pth")
    torch.save({"state_dict": mmpretrain_form(ms), "meta": {}}, d / "mmpretrain.pth")
    return net, ms, d


@pytest.fixture(scope="module")
def inflated(timm_files):
    _, _, d = timm_files
    return family.prepare(str(d / "timm.safetensors"), ARCH, head="imagenet", **OVERRIDES)


@pytest.mark.parametrize("arch,config", [("swin3d_t", "tiny"), ("swin3d_s", "small"), ("swin3d_b", "base")])
def test_keys_order_and_shapes_equal_mmaction2(arch, config):
    ref = json.loads(DATA.read_text())["configs"][f"swin/swin-{config}-p244-w877_in1k-pre_8xb8-amp-32x2x1-30e_kinetics400-rgb.py"]
    model = build_model(arch, device="meta", num_classes=ref["cls_head"]["num_classes"])
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    assert model.backbone.window_size == tuple(ref["backbone"]["window_size"])
    assert model.backbone.patch_size == tuple(ref["backbone"]["patch_size"])
    blocks = [b for layer in model.backbone.layers for b in layer.blocks]  # stochastic depth 0 -> rate
    assert isinstance(blocks[0].drop_path, torch.nn.Identity)
    assert blocks[-1].drop_path.p == pytest.approx(ref["backbone"]["drop_path_rate"])


def test_every_format_inflates_to_the_same_bytes_as_mmaction2(timm_files, inflated):
    net, ms, d = timm_files
    ours = inflated.state_dict()
    for name in ("microsoft.pth", "mmpretrain.pth"):
        other = family.prepare(str(d / name), ARCH, head="imagenet", **OVERRIDES)
        assert other.source.scheme == name.split(".")[0]
        theirs = other.state_dict()
        assert list(theirs) == list(ours)
        assert all(torch.equal(theirs[k], ours[k]) for k in ours), name
    model = build_model(ARCH, num_classes=10, device="meta", init=False, **OVERRIDES)
    expected = mmaction2_inflate_weights(ms, model.backbone, 2, (8, 4, 4))
    backbone = {k[len("backbone."):]: v for k, v in ours.items() if k.startswith("backbone.")}
    index_keys = [k for k in backbone if k.endswith("relative_position_index")]
    assert set(backbone) - set(index_keys) == set(expected)
    for k, v in expected.items():
        assert torch.equal(backbone[k], v), k
    for k in index_keys:  # rebuilt, as mmaction2's module builds it
        assert torch.equal(backbone[k], _mm_index((8, 4, 4)))
    assert torch.equal(ours["cls_head.fc_cls.weight"], ms["head.weight"])


def _mm_index(window):
    """mmaction2's WindowAttention3D index, restated."""
    wd, wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel_ = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel_[:, :, 0] += wd - 1
    rel_[:, :, 1] += wh - 1
    rel_[:, :, 2] += ww - 1
    rel_[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel_[:, :, 1] *= 2 * ww - 1
    return rel_.sum(-1)


def _native_model(state, num_classes=10):
    model = build_model(ARCH, num_classes=num_classes, device="meta", init=False, **OVERRIDES)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def _static(image, frames=16):
    return image.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


def test_static_clip_equals_timm_forward_features_in_every_frame(timm_files, inflated):
    net, _, _ = timm_files
    model = _native_model(inflated.state_dict())
    image = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats3d = model.backbone(_static(image)).permute(0, 2, 3, 4, 1)  # (B, T', H', W', C)
        feats2d = net.forward_features(image)  # (B, H', W', C)
        logits3d, logits2d = model(_static(image)), net(image)
    assert feats3d.shape[1] == 8
    for t in range(8):
        assert rel(feats3d[:, t], feats2d) < 1e-5
    assert rel(logits3d, logits2d) < 1e-5
    ver = family.verify(inflated.state_dict(), ARCH, inflated.source, method="mean", origin="x", size=32,
                        metadata=inflated.metadata())
    assert ver.passed and not ver.warnings and [c.name for c in ver.checks] == \
        ["patch_embed", "layers.0", "layers.1", "layers.2", "norm2", "logits"]


def test_a_corrupted_tensor_fails_verification(inflated):
    state = inflated.state_dict()
    key = "backbone.layers.1.blocks.0.attn.relative_position_bias_table"
    state[key] = state[key] * 1.02
    ver = family.verify(state, ARCH, inflated.source, method="mean", origin="x", metadata=inflated.metadata())
    assert not ver.passed
    assert [c.passed for c in ver.checks][:2] == [True, True] and not ver.checks[2].passed
    with pytest.raises(Inflate3dError, match="does not load strictly"):  # swin3d_t as named, not the tiny one
        family.verify(state, ARCH, inflated.source, method="mean", origin="x", metadata={})


def test_T20_warns_and_verifies_at_an_exact_length_instead(inflated):
    state = inflated.state_dict()
    ver = family.verify(state, ARCH, inflated.source, method="mean", origin="x", metadata=inflated.metadata(),
                        frames=20)
    assert ver.passed and len(ver.warnings) == 1 and "T=20" in ver.warnings[0] and "T=16" in ver.warnings[0]
    err = float(ver.warnings[0].split("max rel err ")[1].split(" ")[0])
    assert err > 1e-2  # at T=20 the padding tokens really do move the output: no false pass
    short = family.verify(state, ARCH, inflated.source, method="mean", origin="x", metadata=inflated.metadata(),
                          frames=8)
    assert short.passed and not short.warnings  # 4 tokens: the temporal window shrinks to them
    assert exact_lengths(2, 8, 40) == [2, 4, 6, 8, 10, 12, 14, 16, 32]


def test_head_count_mismatch_is_refused(timm_files):
    _, _, d = timm_files
    with pytest.raises(Inflate3dError, match=r"heads per stage"):
        family.prepare(str(d / "timm.safetensors"), ARCH, **{**OVERRIDES, "num_heads": (2, 2, 4)})
    with pytest.raises(Inflate3dError, match=r"needs 96, \(2, 2, 6, 2\)"):
        family.prepare(str(d / "timm.safetensors"), ARCH)


def test_resized_window_is_mmaction2s_bicubic_and_says_so(timm_files):
    _, ms, d = timm_files
    window = (4, 7, 7)  # from the 2D window 4: each 7x7 bias grid resized to 13x13
    inf = family.prepare(str(d / "microsoft.pth"), ARCH, **{**OVERRIDES, "window_size": window})
    model = build_model(ARCH, num_classes=None, device="meta", init=False, **{**OVERRIDES, "window_size": window})
    expected = mmaction2_inflate_weights(ms, model.backbone, 2, window)
    got = inf.state_dict()
    assert inf.notes and "bicubic" in inf.notes[0]
    for k, v in expected.items():
        assert torch.equal(got[f"backbone.{k}"], v), k
    ver = family.verify(got, ARCH, inf.source, method="mean", origin="x", metadata=inf.metadata())
    assert ver.passed and ver.warnings and [c.name for c in ver.checks] == ["weights"]


def test_torchvision_swin_t_static_clip(tmp_path):
    from torchvision.models.swin_transformer import SwinTransformer

    torch.manual_seed(3)
    net = perturb(SwinTransformer([4, 4], TINY["embed_dim"], list(TINY["depths"]), list(TINY["num_heads"]), [4, 4],
                                  num_classes=10), 3)
    save_file(dict(net.state_dict()), tmp_path / "tv.safetensors")
    inf = family.prepare(str(tmp_path / "tv.safetensors"), ARCH, head="imagenet", method="center", **OVERRIDES)
    assert inf.source.scheme == "torchvision"
    model = _native_model(inf.state_dict())
    image = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        feats3d = model.backbone(_static(image)).permute(0, 2, 3, 4, 1)
        feats2d = net.norm(net.features(image))
        logits3d, logits2d = model(_static(image)), net(image)
    for t in range(feats3d.shape[1]):
        assert rel(feats3d[:, t], feats2d) < 1e-5
    assert rel(logits3d, logits2d) < 1e-5


def test_hugging_face_swin_model_and_classifier(tmp_path, timm_files, inflated):
    from transformers import SwinConfig, SwinForImageClassification, SwinModel

    config = SwinConfig(image_size=SIZE, embed_dim=TINY["embed_dim"], depths=list(TINY["depths"]),
                        num_heads=list(TINY["num_heads"]), window_size=4, num_labels=10)
    torch.manual_seed(4)
    hf = perturb(SwinModel(config, add_pooling_layer=False), 4)
    save_file(dict(hf.state_dict()), tmp_path / "hf.safetensors")
    inf = family.prepare(str(tmp_path / "hf.safetensors"), ARCH, **OVERRIDES)
    assert inf.source.scheme == "huggingface"
    model = _native_model(inf.state_dict(), num_classes=None)
    image = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        feats3d = model.backbone(_static(image)).permute(0, 2, 3, 4, 1)
        feats2d = hf(pixel_values=image).last_hidden_state.reshape(1, 4, 4, -1)
    for t in range(feats3d.shape[1]):
        assert rel(feats3d[:, t], feats2d) < 1e-5
    classifier = SwinForImageClassification(config).eval()
    classifier.swin.load_state_dict(hf.state_dict(), strict=False)
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, tmp_path / "hfc.safetensors")
    with_head = family.prepare(str(tmp_path / "hfc.safetensors"), ARCH, head="imagenet", **OVERRIDES).state_dict()
    bare = inf.state_dict()
    assert all(torch.equal(with_head[k], bare[k]) for k in bare)
    assert torch.equal(with_head["cls_head.fc_cls.weight"], classifier.classifier.weight)


def test_converted_to_torchvision_computes_the_same_and_round_trips(inflated):
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    native = inflated.state_dict()
    conv = family.convert(native, source=None, target="torchvision", origin="x")
    tv = SwinTransformer3d([2, 4, 4], TINY["embed_dim"], list(TINY["depths"]), list(TINY["num_heads"]), [8, 4, 4],
                           num_classes=10)
    tv.load_state_dict(conv.tensors, strict=True)
    tv.eval()
    model = _native_model(native)
    clip = torch.randn(1, 3, 8, 48, 48, generator=torch.Generator().manual_seed(6))  # not static
    with torch.no_grad():
        assert rel(tv(clip), model(clip)) < 1e-5
    back = family.convert(conv.tensors, source="torchvision", target="mmaction2", origin="y")
    assert list(back.tensors) == list(native) and all(torch.equal(back.tensors[k], native[k]) for k in native)
    assert conv.arch_name == "swin3d_t" and conv.arch_overrides == OVERRIDES


def test_real_swin3d_names_match_torchvision_swin3d_t_s_b():
    from torchvision.models.video import swin3d_b, swin3d_s, swin3d_t

    for ours, theirs in (("swin3d_t", swin3d_t), ("swin3d_s", swin3d_s), ("swin3d_b", swin3d_b)):
        with torch.device("meta"):
            tv = theirs().state_dict()
        native = build_model(ours, num_classes=400, device="meta", init=False).state_dict()
        conv = family.convert(native, source=None, target="torchvision", origin=ours)
        assert {k: tuple(v.shape) for k, v in conv.tensors.items()} == {k: tuple(v.shape) for k, v in tv.items()}


def test_a_fresh_head_is_seeded_and_verification_skips_the_logits(timm_files):
    _, _, d = timm_files
    inf = family.prepare(str(d / "timm.safetensors"), ARCH, head=5, seed=7, **OVERRIDES)
    state = inf.state_dict()
    w = state["cls_head.fc_cls.weight"]
    assert w.shape == (5, 128) and inf.plan.fresh_units == ["cls_head"] and inf.metadata()["head"] == "5"
    assert 0.005 < float(w.std()) < 0.02 and not state["cls_head.fc_cls.bias"].any()  # mmaction2: normal(0, 0.01)
    assert torch.equal(w, family.prepare(str(d / "timm.safetensors"), ARCH, head=5, seed=7, **OVERRIDES).state_dict()
                       ["cls_head.fc_cls.weight"])
    ver = family.verify(state, ARCH, inf.source, method=None, origin="x", metadata=inf.metadata())
    assert ver.passed and ver.method == "mean" and "logits" not in [c.name for c in ver.checks]
