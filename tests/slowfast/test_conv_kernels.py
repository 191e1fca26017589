"""``slowfast.conv.Conv3d``: nn.Conv3d's parameters and maths, with oneDNN for every float32 CPU
kernel wider than one value (PyTorch's own rule sent SlowFast's thin fast pathway to its slow
``slow_conv3d`` kernel at batch 1)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from inflate3d.slowfast.archs import build_model
from inflate3d.slowfast.conv import Conv3d


@pytest.mark.parametrize("shape, kernel, kw", [
    ((1, 8, 6, 20, 20), (1, 3, 3), {"padding": (0, 1, 1)}),
    ((1, 8, 6, 20, 20), (3, 1, 1), {"padding": (1, 0, 0)}),
    ((2, 4, 5, 9, 11), (3, 3, 3), {"padding": 1, "stride": (1, 2, 2), "bias": True}),
    ((1, 6, 4, 12, 12), (3, 3, 3), {"padding": 2, "dilation": 2, "groups": 3}),
    ((1, 8, 6, 20, 20), (1, 1, 1), {}),  # pointwise: PyTorch's own choice
])
def test_same_parameters_and_outputs_as_nn_conv3d(shape, kernel, kw):
    g = torch.Generator().manual_seed(0)
    ref = nn.Conv3d(shape[1], 6 if kw.get("groups") else 8, kernel, **kw)
    ours = Conv3d(shape[1], ref.out_channels, kernel, **kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape and got.is_contiguous()
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())
    x.requires_grad_(True)
    ours(x).square().sum().backward()  # oneDNN's convolution is differentiable too
    assert x.grad is not None and ours.weight.grad is not None


def test_the_fast_pathway_at_batch_one_never_takes_the_slow_kernel():
    """At batch 1 and 64x64 the fast pathway's 8-32 channels fall under PyTorch's rule; every
    convolution PyTorch still runs with ``slow_conv3d`` must be a pointwise one."""
    net = build_model("slowfast_r50_4x16").eval()
    clip = torch.randn(1, 3, 32, 64, 64)
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        net(clip)
    kernels = {e.key: [] for e in prof.key_averages()}
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key in ("aten::slow_conv3d_forward", "aten::mkldnn_convolution"):
            kernels[e.key].append(tuple(e.input_shapes[1][2:]))  # the weight's (t, h, w)
    assert kernels["aten::mkldnn_convolution"]
    assert kernels["aten::slow_conv3d_forward"] and set(kernels["aten::slow_conv3d_forward"]) == {(1, 1, 1)}
    net_ref = build_model("slowfast_r50_4x16").eval()
    net_ref.load_state_dict(net.state_dict())
    for m in net_ref.modules():  # the same network on PyTorch's own choice of kernel
        if isinstance(m, Conv3d):
            m.__class__ = nn.Conv3d
    with torch.inference_mode():
        want, got = net_ref(clip), net(clip)
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())


def test_cpu_autocast_casts_as_it_does_for_nn_conv3d():
    conv = Conv3d(8, 8, (1, 3, 3), padding=(0, 1, 1))
    x = torch.randn(1, 8, 4, 10, 10)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=(0, 1, 1))
        assert conv(x).dtype == want.dtype == torch.bfloat16
