"""Conversion between schemes, proven against pytorchvideo's own models and PySlowFast's own keys."""
from __future__ import annotations

import warnings

import pytest
import torch
from peer_models import randomise_bn

from inflate3d.errors import Inflate3dError
from inflate3d.inflate.convert import convert, swap_head_columns
from inflate3d.inflate.detect import detect_scheme
from inflate3d.slowfast import ResNet3d, build_model

warnings.filterwarnings("ignore", module="pytorchvideo")
pv_slowfast = pytest.importorskip("pytorchvideo.models.slowfast")
pv_resnet = pytest.importorskip("pytorchvideo.models.resnet")

SIZE, SLOW_T, ALPHA = 64, 4, 4  # small frames: the equivalence holds at any size



@pytest.fixture(scope="module")
def pv_sf():
    torch.manual_seed(0)
    head = ((SLOW_T, SIZE // 32, SIZE // 32), (SLOW_T * ALPHA, SIZE // 32, SIZE // 32))
    return randomise_bn(pv_slowfast.create_slowfast(head_pool_kernel_sizes=head, dropout_rate=0.0), 1)


@pytest.fixture(scope="module")
def pv_res():
    torch.manual_seed(0)
    return randomise_bn(pv_resnet.create_resnet(head_pool_kernel_size=(SLOW_T, SIZE // 32, SIZE // 32),
                                                 dropout_rate=0.0), 2)


def _clip(t):
    return torch.randn(1, 3, t, SIZE, SIZE, generator=torch.Generator().manual_seed(t))


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_pytorchvideo_slowfast_to_native_and_back(pv_sf):
    sd = pv_sf.state_dict()
    conv = convert(sd, source=None, target="mmaction2", origin="pv")
    assert conv.source_scheme == "pytorchvideo" and conv.two_pathways
    assert conv.arch_name == "slowfast_r50_8x8" and conv.arch_overrides == {"slow_pathway": {"lateral_norm": True}}
    native = build_model("slowfast_r50_8x8", slow_pathway={"lateral_norm": True}, dropout_ratio=0.0, init=False)
    native.load_state_dict(conv.tensors, strict=True)
    # the head's columns are permuted, not renamed: mmaction2's fast columns come first
    w = sd["blocks.6.proj.weight"]
    assert torch.equal(conv.tensors["cls_head.fc_cls.weight"], torch.cat((w[:, 2048:], w[:, :2048]), 1))
    slow, fast = _clip(SLOW_T), _clip(SLOW_T * ALPHA)
    with torch.inference_mode():
        ours = native.eval()((slow, fast))
        theirs = pv_sf([slow.clone(), fast.clone()])  # pytorchvideo mutates its input list
    assert _rel(ours, theirs) < 1e-4
    back = convert(conv.tensors, source="mmaction2", target="pytorchvideo", origin="native").tensors
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    pv_sf.load_state_dict(back, strict=True)


def test_pytorchvideo_resnet_to_native_and_back(pv_res):
    sd = pv_res.state_dict()
    conv = convert(sd, source=None, target="mmaction2", origin="pv")
    assert not conv.two_pathways
    assert conv.arch_name == "slowonly_r50" and conv.arch_overrides == {"conv1_kernel": (3, 7, 7)}
    native = build_model("slowonly_r50", conv1_kernel=(3, 7, 7), dropout_ratio=0.0, init=False)
    native.load_state_dict(conv.tensors, strict=True)
    clip = _clip(SLOW_T)
    with torch.inference_mode():
        assert _rel(native.eval()(clip), pv_res(clip.clone())) < 1e-4
    back = convert(conv.tensors, source=None, target="pytorchvideo", origin="native").tensors
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


@pytest.mark.parametrize("via", ["pyslowfast", "caffe2"])
def test_pyslowfast_and_caffe2_chains_keep_every_weight(pv_sf, via):
    """pytorchvideo -> native -> PySlowFast (or Caffe2) -> native gives the same network."""
    native = convert(pv_sf.state_dict(), source=None, target="mmaction2", origin="pv").tensors
    there = convert(native, source=None, target=via, origin="native")
    assert detect_scheme(there.tensors, "x") == (via, True)
    again = convert(there.tensors, source=via, target="mmaction2", origin=via).tensors
    for k, v in native.items():
        if via == "caffe2" and k.endswith("num_batches_tracked"):
            assert again[k].item() == 0  # Caffe2 does not store it
        else:
            assert torch.equal(again[k], v), k


@pytest.mark.parametrize("ref,arch,overrides", [
    ("SLOWFAST_8x8_R50", "slowfast_r50_8x8", {"slow_pathway": {"lateral_norm": True}}),
    ("SLOWFAST_4x16_R50", "slowfast_r50_4x16", {"slow_pathway": {"lateral_norm": True}}),
    ("SLOW_8x8_R50", "slowonly_r50", {}),
])
def test_pyslowfast_names_equal_pyslowfast_own(ref, arch, overrides, pyslowfast_reference):
    expected = {k: tuple(s) for k, s in pyslowfast_reference[ref]["keys"]}
    model = build_model(arch, device="meta", init=False, **overrides)
    sd = _distinct(model.state_dict())
    out = convert(sd, source=None, target="pyslowfast", origin=arch).tensors
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    # the values too: the stem and one BN, read through PySlowFast's own names (no table involved)
    slow = "slow_path." if "pathway1" in " ".join(expected) else ""
    for ps, mm in [("s1.pathway0_stem.conv.weight", f"backbone.{slow}conv1.conv.weight"),
                   ("s1.pathway0_stem.bn.running_mean", f"backbone.{slow}conv1.bn.running_mean"),
                   ("s1.pathway0_stem.bn.running_var", f"backbone.{slow}conv1.bn.running_var"),
                   ("s2.pathway0_res0.branch2.a_bn.running_var", f"backbone.{slow}layer1.0.conv1.bn.running_var")]:
        assert torch.equal(out[ps], sd[mm]), ps
    # and PySlowFast's own key list converts to native and loads strictly
    theirs = {k: torch.zeros(s) for k, s in expected.items()}
    conv = convert(theirs, source="pyslowfast", target="mmaction2", origin=ref)
    assert conv.arch_name == arch
    build_model(arch, device="meta", init=False, **overrides).load_state_dict(conv.tensors, strict=True, assign=True)


def test_caffe2_names_equal_pyslowfast_converter(pyslowfast_reference):
    """Each Caffe2 blob lands where PySlowFast's own c2_model_loading puts it."""
    sf = build_model("slowfast_r50_8x8", device="meta", init=False, slow_pathway={"lateral_norm": True})
    blobs_native = _distinct(sf.state_dict())  # zeros would hide a swapped running_mean/running_var
    blobs = convert(blobs_native, source=None, target="caffe2", origin="x").tensors
    blobs.update({"res2_0_branch2a_w_momentum": torch.zeros(1), "lr": torch.zeros(1), "model_iter": torch.zeros(1)})
    pyslowfast = convert(blobs, source="caffe2", target="pyslowfast", origin="c2").tensors
    for c2, ps in pyslowfast_reference["caffe2_to_pyslowfast_examples"]:
        if c2 in ("lr", "model_iter") or c2.endswith("_momentum"):
            continue  # not weights: PySlowFast ignores them, inflate3d drops them with a note
        assert c2 in blobs, c2
        assert ps in pyslowfast and torch.equal(pyslowfast[ps], blobs[c2]), (c2, ps)


def _distinct(meta_state: dict) -> dict[str, torch.Tensor]:
    """Tensors of ``meta_state``'s shapes, each with its own values (offset by a counter per key,
    varying along dim 0); broadcast views, so a 34M-parameter net costs no memory."""
    out = {}
    for i, (k, v) in enumerate(meta_state.items()):
        if v.dtype == torch.int64:
            out[k] = torch.tensor(i + 1)
        else:
            rows = torch.arange(v.shape[0], dtype=torch.float32) * 1e-3 + i
            out[k] = rows.view(-1, *[1] * (v.dim() - 1)).expand(v.shape)
    return out


def _torchvision3d(depth: int, seed: int) -> tuple[dict, tuple, tuple]:
    """An I3ResNet-style checkpoint: torchvision names, 5-D kernels, mixed 3x1x1/3x3x3, bf16."""
    import torchvision

    torch.manual_seed(seed)
    sd2d = getattr(torchvision.models, f"resnet{depth}")().state_dict()
    blocks = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    inflate = tuple(tuple((b + s) % 2 for b in range(n)) for s, n in enumerate(blocks))
    style = tuple(tuple("3x3x3" if (b + s) % 3 == 0 else "3x1x1" for b in range(n)) for s, n in enumerate(blocks))
    out = {}
    for k, v in sd2d.items():
        if v.dim() == 4:
            t = 1
            if k == "conv1.weight":
                t = 5
            elif ".conv" in k:
                stage, block, conv = int(k[5]) - 1, int(k.split(".")[1]), k.split(".")[2]
                if inflate[stage][block]:
                    t = 3 if (conv == "conv1") == (style[stage][block] == "3x1x1") and conv != "conv3" else 1
            v = v.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        out[k] = v.to(torch.bfloat16) if v.is_floating_point() else v
    return out, inflate, style


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_torchvision3d_mixed_kernels_bf16(depth):
    sd, inflate, style = _torchvision3d(depth, depth)
    conv = convert(sd, source=None, target="mmaction2", origin="tv3d")
    assert conv.source_scheme == "torchvision3d"
    assert {v.dtype for k, v in conv.tensors.items() if v.is_floating_point()} == {torch.bfloat16}
    with torch.device("meta"):
        net = ResNet3d(depth, conv1_kernel=(5, 7, 7), inflate=inflate, inflate_style=style)
    backbone = {k[len("backbone."):]: v for k, v in conv.tensors.items() if k.startswith("backbone.")}
    net.load_state_dict(backbone, strict=True, assign=True)
    back = convert(conv.tensors, source=None, target="torchvision3d", origin="native").tensors
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_lateral_norm_mismatches_are_refused_with_the_reason(pv_sf):
    plain = build_model("slowfast_r50_4x16", device="meta", init=False)
    sd = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in plain.state_dict().items()}
    with pytest.raises(Inflate3dError, match="laterals have no BN .* pyslowfast fuses with conv\\+BN\\+ReLU"):
        convert(sd, source=None, target="pyslowfast", origin="x")
    with pytest.raises(Inflate3dError, match="laterals have BN .* which slowfast_r50_8x8 does not have"):
        convert(pv_sf.state_dict(), source=None, target="mmaction2", origin="pv", arch="slowfast_r50_8x8")


def test_unmapped_keys_are_an_error_that_lists_them(pv_res):
    sd = dict(pv_res.state_dict())
    sd["blocks.1.res_blocks.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(Inflate3dError, match="1 keys have no pytorchvideo -> native mapping: "
                                             "blocks.1.res_blocks.0.extra.weight"):
        convert(sd, source=None, target="mmaction2", origin="x")


def test_unknown_arch_is_a_clear_error(pv_res):
    with pytest.raises(Inflate3dError, match="unknown architecture 'slowfast_r999'"):
        convert(pv_res.state_dict(), source=None, target="mmaction2", origin="x", arch="slowfast_r999")


def test_wrong_from_is_refused(pv_res):
    with pytest.raises(Inflate3dError, match="given as pyslowfast, but its keys are pytorchvideo's"):
        convert(pv_res.state_dict(), source="pyslowfast", target="mmaction2", origin="x")


def test_swap_head_columns_is_a_permutation():
    w = torch.arange(12.0).view(2, 6)
    assert torch.equal(swap_head_columns(w, first=4), torch.tensor([[4.0, 5, 0, 1, 2, 3], [10, 11, 6, 7, 8, 9]]))
    assert torch.equal(swap_head_columns(swap_head_columns(w, first=4), first=2), w)
