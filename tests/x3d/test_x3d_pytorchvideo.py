"""pytorchvideo's own X3D-XS/S/M/L against the native networks: same outputs after conversion,
back bit for bit and strictly loadable; the shortcut-BN fold in the other direction."""
from __future__ import annotations

import pytest
import torch
from x3d_peers import HUB, perturb_bn, pv_logits, rel_err, tiny_pv

from inflate3d import build_model
from inflate3d.errors import Inflate3dError
from inflate3d.x3d.convert import convert

pv_hub = pytest.importorskip("pytorchvideo.models.hub")
FOLDED = ["backbone.layer1.0.downsample.conv.weight", "backbone.layer1.0.conv3.bn.bias"] + \
    [f"backbone.layer1.0.downsample.bn.{f}" for f in ("weight", "bias", "running_mean", "running_var",
                                                       "num_batches_tracked")]


def native_model(conv) -> torch.nn.Module:
    model = build_model(conv.arch_name, num_classes=conv.arch.num_classes, init=False)
    model.load_state_dict(conv.tensors, strict=True)
    return model.eval()


@pytest.mark.parametrize("name,frames", [("x3d_xs", 4), ("x3d_s", 13), ("x3d_l", 4)])
def test_pytorchvideo_to_native_same_outputs_and_back_bit_for_bit(name, frames):
    """At 32x32 (pytorchvideo's smallest crop: its total stride); S keeps its 13 frames."""
    pv = tiny_pv(name, frames)
    state = pv.state_dict()
    x = torch.randn(1, 3, frames, 32, 32, generator=torch.Generator().manual_seed(2))
    logits, probs = pv_logits(pv, x)

    conv = convert(state, source=None, target="mmaction2", origin=name)
    assert conv.arch_name == ("x3d_l" if name == "x3d_l" else "x3d_s")
    assert [s for s, n, _ in conv.key_map if n is None] == []  # every key mapped
    assert sorted(n for s, n, _ in conv.key_map if s is None) == sorted(FOLDED[2:])  # identity BN inserted
    with torch.no_grad():
        scores = native_model(conv)(x)
    assert rel_err(scores, logits) < 1e-4
    assert rel_err(scores.softmax(dim=1), probs) < 1e-4  # pytorchvideo's head ends in a softmax

    back = convert(conv.tensors, source="mmaction2", target="pytorchvideo", origin=name)
    assert list(back.tensors) == list(state)  # pytorchvideo's own order
    assert all(torch.equal(back.tensors[k], v) and back.tensors[k].dtype == v.dtype for k, v in state.items())
    assert back.round_trip_in_function is None  # an identity BN folds to nothing
    again = tiny_pv(name, frames, seed=5)
    again.load_state_dict(back.tensors, strict=True)
    assert torch.equal(pv_logits(again, x)[1], probs)


@pytest.mark.parametrize("name", sorted(HUB))
def test_hub_models_keys_and_shapes(name):
    """The hub's own builders (no weights: meta device) convert key for key both ways."""
    with torch.device("meta"):
        pv = getattr(pv_hub, name)(pretrained=False)
    state = pv.state_dict()
    conv = convert(state, source=None, target="mmaction2", origin=name)
    expected = build_model(conv.arch_name, device="meta", init=False).state_dict()
    assert [(k, v.shape) for k, v in conv.tensors.items()] == [(k, v.shape) for k, v in expected.items()]
    assert len(conv.tensors) == len(state) + 5  # pytorchvideo has no shortcut BN in layer1.0
    back = convert(conv.tensors, source=None, target="pytorchvideo", origin=name)
    assert [(k, v.shape) for k, v in back.tensors.items()] == [(k, v.shape) for k, v in state.items()]
    if name in ("x3d_xs", "x3d_m"):  # same weights as S: the name is a stated convention, --arch overrides it
        assert conv.arch_name == "x3d_s" and any("by convention" in n for n in conv.notes)
        assert convert(state, source=None, target="mmaction2", origin=name, arch=name).arch_name == name


def test_native_to_pytorchvideo_folds_the_shortcut_bn():
    """A native X3D whose layer1.0 shortcut BN is not the identity: pytorchvideo has no such BN, so
    it is folded; pytorchvideo's network then computes what the native one does."""
    pv = tiny_pv("x3d_xs", 4)
    conv = convert(pv.state_dict(), source=None, target="mmaction2", origin="pv")
    native = native_model(conv)
    perturb_bn(native.backbone.layer1[0].downsample, seed=9)
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        scores = native(x)
    source = native.state_dict()

    to_pv = convert(source, source=None, target="pytorchvideo", origin="native")
    assert any("folded into the shortcut conv" in n for n in to_pv.notes)
    assert all(k not in to_pv.tensors for k in ("blocks.1.res_blocks.0.branch1_norm.weight",))
    pv.load_state_dict(to_pv.tensors, strict=True)
    logits, probs = pv_logits(pv, x)
    assert rel_err(logits, scores) < 1e-4
    unfolded = dict(to_pv.tensors)  # without the fold (the BN simply dropped) the outputs differ
    unfolded["blocks.1.res_blocks.0.branch1_conv.weight"] = source[FOLDED[0]]
    unfolded["blocks.1.res_blocks.0.branch2.norm_c.bias"] = source[FOLDED[1]]
    pv.load_state_dict(unfolded, strict=True)
    assert rel_err(pv_logits(pv, x)[0], scores) > 1e-2

    back = convert(to_pv.tensors, source=None, target="mmaction2", origin="pv")
    differ = [k for k, v in source.items() if not torch.equal(back.tensors[k], v)]
    assert set(differ) == set(FOLDED)  # only the folded BN's tensors: the other 561 round-trip bit for bit
    with torch.no_grad():
        assert rel_err(native_model(back)(x), scores) < 1e-4  # ... and those in function
    assert "round-trip in function" in to_pv.round_trip_in_function(source, back.tensors, differ)
    corrupt = dict(back.tensors)
    corrupt[FOLDED[1]] = corrupt[FOLDED[1]] * 1.02
    with pytest.raises(Inflate3dError, match="same function"):
        to_pv.round_trip_in_function(source, corrupt, differ)
    corrupt = dict(back.tensors)
    corrupt["backbone.layer2.0.conv1.conv.weight"] = corrupt["backbone.layer2.0.conv1.conv.weight"] * 1.02
    with pytest.raises(Inflate3dError, match="does not reproduce"):
        to_pv.round_trip_in_function(source, corrupt, differ + ["backbone.layer2.0.conv1.conv.weight"])
