"""The native X3D networks: mmaction2's key lists key for key, its settings, init and head; the
shortcut-BN fold and the identity BN as pure tensor maths."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from inflate3d import build_model
from inflate3d.slowfast.archs import all_archs
from inflate3d.x3d.archs import ORIGINS
from inflate3d.x3d.steps import BN_EPS, fold_shortcut_bn, identity_bn, insert_identity_bn, peer_order

MMACTION2_CONFIGS = {"x3d_s": "x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py",
                     "x3d_m": "x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py"}


@pytest.mark.parametrize("arch", sorted(MMACTION2_CONFIGS))
def test_mmaction2_key_list_key_for_key(arch, x3d_reference):
    ref = x3d_reference["mmaction2"][MMACTION2_CONFIGS[arch]]
    model = build_model(arch, num_classes=ref["cls_head"]["num_classes"], device="meta", init=False)
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == ref["state_dict"]
    settings = {k: v for k, v in ref["backbone"].items() if k != "type"}
    assert {k: all_archs()[arch].backbone[k] for k in settings} == settings
    assert model.cls_head.in_channels == ref["cls_head"]["in_channels"]
    assert ORIGINS[arch]["mmaction2"] == MMACTION2_CONFIGS[arch]


def test_named_archs_clips_and_depths():
    archs = all_archs()
    assert {n: archs[n].clip for n in ORIGINS} == {"x3d_xs": (4, 160, 160), "x3d_s": (13, 160, 160),
                                                  "x3d_m": (16, 224, 224), "x3d_l": (16, 312, 312)}
    blocks = {n: build_model(n, device="meta", init=False).backbone.stage_blocks for n in ORIGINS}
    assert blocks == {"x3d_xs": (3, 5, 11, 7), "x3d_s": (3, 5, 11, 7), "x3d_m": (3, 5, 11, 7),
                      "x3d_l": (5, 10, 25, 15)}
    for n in ORIGINS:
        assert "pytorchvideo hub " + n in archs[n].description and "X3D_" in archs[n].description


def test_forward_init_and_loss():
    torch.manual_seed(0)
    model = build_model("x3d_xs", num_classes=7, dropout_ratio=0.0)
    for m in model.backbone.modules():  # mmaction2's zero_init_residual: each block starts as its shortcut
        if hasattr(m, "conv3") and hasattr(m, "se_ratio"):
            assert torch.count_nonzero(m.conv3.bn.weight) == 0
    assert model.cls_head.fc1.bias is None and model.cls_head.fc1.weight.std().item() == pytest.approx(0.01, rel=0.05)
    x = torch.randn(2, 3, 4, 32, 32)
    scores = model(x)
    assert scores.shape == (2, 7)
    losses = model.loss(x, torch.tensor([1, 3]))
    assert set(losses) == {"loss_cls", "top1_acc", "top5_acc"}
    assert losses["loss_cls"].item() == pytest.approx(F.cross_entropy(scores, torch.tensor([1, 3])).item(), rel=1e-6)


def test_fold_is_exact_in_eval_mode():
    """BN_d(conv(x)) + BN_3(z) == conv'(x) + BN_3'(z) with the folded tensors, on distinct values."""
    g = torch.Generator().manual_seed(0)
    c = 6
    p = "backbone.layer1.0."
    native = {f"{p}downsample.conv.weight": torch.randn(c, c, 1, 1, 1, generator=g),
              f"{p}downsample.bn.weight": 1 + 0.3 * torch.randn(c, generator=g),
              f"{p}downsample.bn.bias": 0.3 * torch.randn(c, generator=g),
              f"{p}downsample.bn.running_mean": 0.3 * torch.randn(c, generator=g),
              f"{p}downsample.bn.running_var": 0.5 + torch.rand(c, generator=g),
              f"{p}downsample.bn.num_batches_tracked": torch.tensor(3),
              f"{p}conv3.bn.weight": 1 + 0.3 * torch.randn(c, generator=g),
              f"{p}conv3.bn.bias": 0.3 * torch.randn(c, generator=g),
              f"{p}conv3.bn.running_mean": 0.3 * torch.randn(c, generator=g),
              f"{p}conv3.bn.running_var": 0.5 + torch.rand(c, generator=g)}
    folded = fold_shortcut_bn(native, [p])
    assert not any(".downsample.bn." in k for k in folded)
    x, z = torch.randn(2, c, 3, 4, 4, generator=g), torch.randn(2, c, 3, 4, 4, generator=g)

    def bn(t, pre, src):
        return F.batch_norm(t, src[f"{pre}running_mean"], src[f"{pre}running_var"], src[f"{pre}weight"],
                            src[f"{pre}bias"], training=False, eps=BN_EPS)

    before = bn(F.conv3d(x, native[f"{p}downsample.conv.weight"]), f"{p}downsample.bn.", native) \
        + bn(z, f"{p}conv3.bn.", native)
    after = F.conv3d(x, folded[f"{p}downsample.conv.weight"]) + bn(z, f"{p}conv3.bn.", folded)
    assert ((after - before).abs().max() / before.abs().max()).item() < 1e-6
    plain = F.conv3d(x, native[f"{p}downsample.conv.weight"]) + bn(z, f"{p}conv3.bn.", native)
    assert ((plain - before).abs().max() / before.abs().max()).item() > 1e-2  # the BN mattered


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_identity_bn_is_the_identity_and_folds_to_nothing(dtype):
    g = torch.Generator().manual_seed(1)
    bn = torch.nn.BatchNorm3d(5, eps=BN_EPS).eval()
    bn.load_state_dict(identity_bn(torch.empty(0), 5))
    x = torch.randn(2, 5, 3, 4, 4, generator=g)
    assert torch.equal(bn(x), x)  # float32: var + eps is exactly 1
    p = "backbone.layer1.0."
    w, b = torch.randn(5, 5, 1, 1, 1, generator=g).to(dtype), torch.randn(5, generator=g).to(dtype)
    native = insert_identity_bn({f"{p}downsample.conv.weight": w, f"{p}conv3.bn.bias": b}, [p])
    assert native[f"{p}downsample.bn.running_var"].dtype == dtype
    back = fold_shortcut_bn(native, [p])
    assert set(back) == {f"{p}downsample.conv.weight", f"{p}conv3.bn.bias"}
    assert torch.equal(back[f"{p}downsample.conv.weight"], w) and torch.equal(back[f"{p}conv3.bn.bias"], b)


def test_peer_order_moves_se_before_conv3():
    keys = ["backbone.layer1.0.downsample.conv.weight", "backbone.layer1.0.conv2.bn.bias",
            "backbone.layer1.0.conv3.conv.weight", "backbone.layer1.0.conv3.bn.bias",
            "backbone.layer1.0.se_module.fc1.weight", "backbone.layer1.0.se_module.fc2.bias",
            "backbone.layer1.1.conv3.conv.weight", "backbone.layer1.1.conv3.bn.bias", "backbone.conv5.conv.weight"]
    assert peer_order(keys) == [keys[0], keys[1], keys[4], keys[5], keys[2], keys[3], keys[6], keys[7], keys[8]]
