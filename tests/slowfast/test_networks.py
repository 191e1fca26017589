"""Behaviour of the native networks: shapes, kernels, strides, laterals, modes, meta building."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from inflate3d.slowfast import (BasicBlock3d, Bottleneck3d, ResNet3d, ResNet3dPathway,
                                ResNet3dSlowFast, build_model, get_arch)


def test_seed_forward_shapes_slowfast_r50_4x16():
    """The seeds' figures: slow (1,2048,4,7,7), fast (1,256,32,7,7), scores (1,400)."""
    model = build_model("slowfast_r50_4x16").eval()
    with torch.inference_mode():
        slow, fast = model.backbone(torch.randn(1, 3, 32, 224, 224))
        assert slow.shape == (1, 2048, 4, 7, 7)
        assert fast.shape == (1, 256, 32, 7, 7)
        assert model.cls_head((slow, fast)).shape == (1, 400)


@pytest.mark.parametrize("name,frames,out_t", [("i3d_r50", 32, 4), ("slowonly_r50", 8, 8),
                                               ("i3d_r18", 16, 2), ("slowonly_r34", 4, 4)])
def test_single_pathway_forward_shapes(name, frames, out_t):
    model = build_model(name, num_classes=7).eval()
    with torch.inference_mode():
        feat = model.backbone(torch.randn(2, 3, frames, 64, 64))
        assert feat.shape == (2, model.backbone.feat_dim, out_t, 2, 2)
        assert model(torch.randn(2, 3, frames, 64, 64)).shape == (2, 7)


def test_slowfast_samples_like_mmaction2_and_accepts_an_explicit_pair():
    model = build_model("slowfast_r50_8x8", num_classes=None).eval()
    clip = torch.randn(1, 3, 16, 32, 32)
    slow, fast = model.backbone.sample(clip)
    assert torch.equal(slow, clip[:, :, ::4]) and torch.equal(fast, clip)
    with torch.inference_mode():
        a = model.backbone(clip)
        b = model.backbone((clip[:, :, ::4].clone(), clip.clone()))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_slowfast_head_concatenates_fast_then_slow():
    head = build_model("slowfast_r50_4x16").cls_head.eval()
    slow = torch.randn(1, 2048, 2, 2, 2)
    fast = torch.randn(1, 256, 8, 2, 2)
    expected = head.fc_cls(torch.cat((fast.mean((2, 3, 4)), slow.mean((2, 3, 4))), dim=1))
    torch.testing.assert_close(head((slow, fast)), expected)


@pytest.mark.parametrize("style,inflate_style,k1,k2", [
    ("pytorch", "3x1x1", (3, 1, 1), (1, 3, 3)), ("pytorch", "3x3x3", (1, 1, 1), (3, 3, 3))])
def test_bottleneck_kernels_and_strides(style, inflate_style, k1, k2):
    b = Bottleneck3d(64, 16, spatial_stride=2, temporal_stride=2, style=style, inflate=True,
                     inflate_style=inflate_style)
    assert b.conv1.conv.kernel_size == k1 and b.conv2.conv.kernel_size == k2
    assert b.conv1.conv.stride == (1, 1, 1) and b.conv2.conv.stride == (2, 2, 2)
    caffe = Bottleneck3d(64, 16, spatial_stride=2, temporal_stride=2, style="caffe")
    assert caffe.conv1.conv.stride == (2, 2, 2) and caffe.conv2.conv.stride == (1, 1, 1)
    flat = Bottleneck3d(64, 16, inflate=False)
    assert flat.conv1.conv.kernel_size == (1, 1, 1) and flat.conv2.conv.kernel_size == (1, 3, 3)


def test_basic_block_inflates_both_convs():
    b = BasicBlock3d(8, 8, inflate=True)
    assert b.conv1.conv.kernel_size == (3, 3, 3) and b.conv2.conv.kernel_size == (3, 3, 3)
    b = BasicBlock3d(8, 8, inflate=False)
    assert b.conv1.conv.kernel_size == (1, 3, 3) and b.conv2.conv.kernel_size == (1, 3, 3)


def test_per_block_inflate_pattern_dilation_and_strides():
    net = ResNet3d(50, inflate=((1, 0, 1), 0, (1, 0, 0, 1, 0, 0), 1), dilations=(1, 1, 2, 1),
                   temporal_strides=(1, 2, 1, 1), conv1_kernel=(5, 7, 7), conv1_stride_t=2)
    kt = [[blk.conv1.conv.kernel_size[0] for blk in getattr(net, f"layer{i}")] for i in range(1, 5)]
    assert kt == [[3, 1, 3], [1, 1, 1, 1], [3, 1, 1, 3, 1, 1], [3, 3, 3]]
    assert net.layer3[0].conv2.conv.dilation == (1, 2, 2)
    assert net.layer2[0].downsample.conv.stride == (2, 2, 2)
    assert net.conv1.conv.stride == (2, 2, 2) and net.conv1.conv.padding == (2, 3, 3)
    with pytest.raises(ValueError, match="layer2 has 3 flags for 4 blocks"):
        ResNet3d(50, inflate=(1, (1, 0, 1), 1, 1))
    with pytest.raises(ValueError, match="invalid depth"):
        ResNet3d(42)


def test_pool_switches_change_the_temporal_size():
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.inference_mode():
        assert ResNet3d(18, pool1_stride_t=2).eval()(x).shape[2] == 2
        assert ResNet3d(18, with_pool2=False).eval()(x).shape[2] == 8
        assert ResNet3d(18, with_pool1=False).eval()(x).shape[-1] == 2


def test_out_indices_return_several_stages():
    net = ResNet3d(18, out_indices=(0, 3), base_channels=8).eval()
    with torch.inference_mode():
        a, b = net(torch.randn(1, 3, 4, 32, 32))
    assert a.shape[1] == 8 and b.shape[1] == 64


def test_lateral_norm_inv_infl_and_activate():
    p = ResNet3dPathway(50, lateral=True, lateral_norm=True, speed_ratio=4, fusion_kernel=7)
    assert isinstance(p.layer2_lateral.bn, nn.BatchNorm3d) and p.layer2_lateral.relu is not None
    plain = ResNet3dPathway(50, lateral=True)
    assert plain.layer2_lateral.bn is None and plain.layer2_lateral.relu is None
    off = ResNet3dPathway(50, lateral=True, lateral_activate=(1, 0, 1, 0))
    assert off.lateral_connections == ["layer2_lateral"] and not hasattr(off, "layer1_lateral")
    assert off.layer2[0].conv1.conv.in_channels == 256  # no lateral into layer2
    assert off.layer3[0].conv1.conv.in_channels == 512 + 128
    infl = ResNet3dPathway(50, lateral=True, lateral_infl=4)
    assert infl.layer1[0].conv1.conv.in_channels == 64 + 32
    inv = ResNet3dPathway(50, lateral=True, lateral_inv=True, base_channels=8, channel_ratio=8)
    assert isinstance(inv.conv1_lateral.conv, nn.ConvTranspose3d)
    assert inv.layer1[0].conv1.conv.in_channels == 8 + 8 * 8 // 2


def test_lateral_inv_upsamples_time():
    inv = ResNet3dPathway(50, lateral=True, lateral_inv=True, speed_ratio=4, channel_ratio=8).conv1_lateral
    assert inv(torch.randn(1, 64 * 8, 2, 4, 4)).shape == (1, 64 * 8 // 2, 8, 4, 4)


def test_norm_eval_and_frozen_stages():
    net = ResNet3dPathway(18, lateral=True, norm_eval=True, frozen_stages=2).train()
    assert all(not m.training for m in net.modules() if isinstance(m, nn.BatchNorm3d))
    assert not any(p.requires_grad for p in net.conv1.parameters())
    assert not any(p.requires_grad for p in net.layer2.parameters())
    assert not any(p.requires_grad for p in net.layer2_lateral.parameters())
    assert all(p.requires_grad for p in net.layer3.parameters())
    assert net.layer3.training


def test_zero_init_residual():
    net = ResNet3d(50, zero_init_residual=True)
    net.init_weights()
    assert all(float(b.conv3.bn.weight.detach().abs().sum()) == 0 for b in net.modules() if isinstance(b, Bottleneck3d))
    assert all(float(b.conv1.bn.weight.detach().min()) == 1 for b in net.modules() if isinstance(b, Bottleneck3d))
    off = ResNet3d(50, zero_init_residual=False)
    off.init_weights()
    assert float(off.layer1[0].conv3.bn.weight.detach().min()) == 1


def test_meta_build_allocates_nothing_and_materialises():
    model = build_model("slowfast_r101_8x8", device="meta")
    assert all(p.is_meta for p in model.parameters())
    assert model.state_dict()["backbone.fast_path.conv1.conv.weight"].shape == (8, 3, 5, 7, 7)


def test_build_model_overrides_and_errors():
    m = build_model("i3d_r50", num_classes=10, device="meta", dropout_ratio=0.0, with_pool2=False,
                    inflate_style="3x3x3")
    assert m.cls_head.dropout is None and not m.backbone.with_pool2
    assert m.backbone.layer1[0].conv2.conv.kernel_size == (3, 3, 3)
    assert build_model("i3d_r50", num_classes=None, device="meta").cls_head is None
    with pytest.raises(KeyError, match="unknown architecture 'nope'"):
        build_model("nope")
    with pytest.raises(KeyError, match="unknown setting 'not_a_setting'"):
        build_model("i3d_r50", device="meta", not_a_setting=1)
    assert get_arch("slowfast_r50_8x8").backbone["speed_ratio"] == 4


def test_slowfast_rejects_incompatible_rates():
    with pytest.raises(ValueError, match="multiple of speed_ratio"):
        ResNet3dSlowFast(resample_rate=6, speed_ratio=4)
