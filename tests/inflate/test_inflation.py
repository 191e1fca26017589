"""Every tensor of every inflated architecture, against an independent statement of the rules.

The oracle below re-states mmaction2's ``inflate_weights`` (walk the conv units, map
``convN``->``bnN`` and ``downsample``->``downsample.0/1``, zero-pad missing input channels at the
end, ``w.unsqueeze(2).expand_as(w3d) / T``); tensors it does not produce must be fresh and are
checked against mmaction2's init rules. Then the boring-video check must pass for each.
"""
from __future__ import annotations

import math

import pytest
import torch

from inflate3d.inflate import prepare
from inflate3d.slowfast import ConvBN3d, ResNet3dSlowFast, build_model
from inflate3d.verify import verify_inflated

SINGLE = [f"{fam}_r{d}" for d in (18, 34, 50, 101, 152) for fam in ("i3d", "slowonly")]
SLOWFAST = ["slowfast_r50_4x16", "slowfast_r50_8x8", "slowfast_r101_4x16", "slowfast_r101_8x8"]


def oracle(model, sd2d, method):
    """{target key: expected tensor} for every tensor with a 2D source."""
    backbone = model.backbone
    pathway, prefix = (backbone.slow_path, "backbone.slow_path.") if isinstance(backbone, ResNet3dSlowFast) \
        else (backbone, "backbone.")
    out = {}
    for name, module in pathway.named_modules():
        if "lateral" in name or not isinstance(module, ConvBN3d):
            continue
        conv2d, bn2d = (name + ".0", name + ".1") if "downsample" in name else (name, name.replace("conv", "bn"))
        w2d = sd2d[conv2d + ".weight"]
        o, i, t = module.conv.weight.shape[:3]
        if i != w2d.shape[1]:
            w2d = torch.cat((w2d, torch.zeros(o, i - w2d.shape[1], *w2d.shape[2:], dtype=w2d.dtype)), dim=1)
        if method == "mean":
            w3d = w2d.unsqueeze(2).expand(o, i, t, *w2d.shape[2:]) / t
        else:
            w3d = torch.zeros(o, i, t, *w2d.shape[2:], dtype=w2d.dtype)
            w3d[:, :, t // 2] = w2d
        out[f"{prefix}{name}.conv.weight"] = w3d
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{prefix}{name}.bn.{p}"] = sd2d[f"{bn2d}.{p}"]
    return out


def check_fresh(key, t, model):
    """Fresh tensors follow mmaction2's init: Kaiming-normal (fan_out) convs, BN 1/0 (the last
    BN of a fast-pathway block 0: zero_init_residual), running stats 0/1, head N(0, 0.01)."""
    if key.endswith("num_batches_tracked") or key.endswith("running_mean") or key.endswith(".bn.bias"):
        assert not t.any(), key
    elif key.endswith("running_var"):
        assert torch.equal(t, torch.ones_like(t)), key
    elif key.endswith(".bn.weight"):
        last = (key.endswith("conv3.bn.weight") or (key.endswith("conv2.bn.weight") and model.backbone.fast_path.depth < 50))
        assert torch.equal(t, torch.zeros_like(t) if last and "fast_path.layer" in key else torch.ones_like(t)), key
    elif key == "cls_head.fc_cls.bias":
        assert not t.any()
    elif key == "cls_head.fc_cls.weight":
        assert abs(t.std().item() - 0.01) < 0.002
    else:
        assert t.dim() == 5, key
        fan_out = t.shape[0] * math.prod(t.shape[2:])
        expected = math.sqrt(2.0 / fan_out)
        assert t.numel() < 64 or abs(t.std().item() / expected - 1) < 0.35, (key, t.std().item(), expected)
        assert "fast_path" in key or "_lateral" in key, f"{key} should have come from 2D"


def check_every_tensor(inflation, sd, method, head):
    model = inflation.model
    expected = oracle(model, inflation.source.tensors, method)
    assert list(sd) == list(model.state_dict())
    for key, t in sd.items():
        if key in expected:
            assert torch.equal(t, expected[key]), key
        elif key.startswith("cls_head") and head == "imagenet":
            fc = inflation.source.tensors["fc.weight" if key.endswith("weight") else "fc.bias"]
            extra = t.shape[-1] - fc.shape[-1] if t.dim() == 2 else 0
            assert torch.equal(t[..., extra:], fc) and not t[..., :extra].any(), key
        else:
            check_fresh(key, t, model)


@pytest.mark.parametrize("method", ["mean", "center"])
@pytest.mark.parametrize("arch", SINGLE + SLOWFAST)
def test_every_tensor_and_the_boring_video(arch, method, seeded):
    depth = int(arch.split("_r")[1].split("_")[0])
    source = seeded(depth)
    head = "imagenet" if method == "center" else "none"
    inflation = prepare(source, arch, method=method, head=head)
    sd = inflation.state_dict()
    check_every_tensor(inflation, sd, method, head)
    ver = verify_inflated(sd, inflation.arch, source.tensors, depth=depth, method=method, origin=arch,
                          head_from_2d=head == "imagenet")
    assert ver.passed, [(c.name, c.max_rel) for c in ver.checks]
    assert [c.name for c in ver.checks] == ["stem", "layer1", "layer2", "layer3", "layer4"] + \
        (["logits"] if head == "imagenet" else [])
    if method == "center":  # exact in float64 compute: nothing but rounding of the arithmetic
        assert max(c.max_rel for c in ver.checks) < 1e-10


def test_padded_inputs_and_fresh_units_of_slowfast(seeded):
    inflation = prepare(seeded(50), "slowfast_r50_4x16", method="mean", head=400)
    padded = {e.key: e.pad for e in inflation.plan.entries if e.padded}
    assert padded == {f"backbone.slow_path.layer{i}.0.{c}.conv.weight": p
                      for i, p in zip((1, 2, 3, 4), (16, 64, 128, 256)) for c in ("conv1", "downsample")}
    assert inflation.plan.fresh_units == [f"backbone.slow_path.{n}" for n in
                                          ("conv1_lateral", "layer1_lateral", "layer2_lateral", "layer3_lateral")] + \
        ["backbone.fast_path", "cls_head"]
    assert inflation.plan.unused == ["fc.weight", "fc.bias"]


def test_imagenet_head_loads_strictly_and_matches_the_2d_classifier(seeded):
    inflation = prepare(seeded(50), "slowfast_r50_8x8", method="center", head="imagenet")
    sd = inflation.state_dict()
    model = build_model("slowfast_r50_8x8", num_classes=1000)
    model.load_state_dict(sd, strict=True)
    w = sd["cls_head.fc_cls.weight"]
    assert w.shape == (1000, 2304) and not w[:, :256].any()
    assert torch.equal(w[:, 256:], seeded(50).tensors["fc.weight"])


def test_dtype_is_kept(seeded):
    src = seeded(18)
    half = type(src)({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in src.tensors.items()},
                     src.label, src.kind, src.sha256, src.depth)
    inflation = prepare(half, "i3d_r18", method="mean", head=5)
    sd = inflation.state_dict()
    assert {v.dtype for k, v in sd.items() if not k.endswith("num_batches_tracked")} == {torch.bfloat16}
    ver = verify_inflated(sd, inflation.arch, half.tensors, depth=18, method="mean", origin="bf16")
    assert ver.passed, [(c.name, c.max_rel) for c in ver.checks]


def test_source_without_num_batches_tracked_gets_zero(seeded):
    src = seeded(18)
    bare = type(src)({k: v for k, v in src.tensors.items() if not k.endswith("num_batches_tracked")},
                     src.label, src.kind, src.sha256, src.depth)
    sd = prepare(bare, "slowonly_r18", method="mean").state_dict()
    nbt = [v for k, v in sd.items() if k.endswith("num_batches_tracked")]
    assert nbt and all(v.dtype == torch.int64 and v.item() == 0 for v in nbt)


def test_fresh_init_is_seeded(seeded):
    a = prepare(seeded(50), "slowfast_r50_4x16", seed=1).state_dict()
    b = prepare(seeded(50), "slowfast_r50_4x16", seed=1).state_dict()
    c = prepare(seeded(50), "slowfast_r50_4x16", seed=2).state_dict()
    key = "backbone.fast_path.layer1.0.conv1.conv.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
