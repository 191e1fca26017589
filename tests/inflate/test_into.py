"""inflate_into: 2D ResNet weights into 3D models inflate3d did not write (torchvision, pytorchvideo,
a net written here), aligned by structure, every tensor checked against a name map written here or
against the named-arch path, and the proofs able to fail."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from inflate3d import inflate_into
from inflate3d.commands.inflate_into import proof_json
from inflate3d.errors import Inflate3dError
from inflate3d.inflate import inflate_kernel, prepare
from inflate3d.inflate.convert import from_native
from inflate3d.inflate.mapping import FRESH
from inflate3d.inflate.schemes import SCHEMES
from inflate3d.verify.layers import prove_layers
from inflate3d.verify.whole import static_clip_check


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


_DISTINCT = {}


@pytest.fixture
def source(seeded):
    """source(depth): a seeded ResNet whose BN weights and biases are distinct random values too
    (torchvision's init makes them all ones and zeros, which would hide swapped names)."""
    from inflate3d.inflate.sources import MEMORY, Source2D, tensors_sha256

    def get(depth):
        if depth not in _DISTINCT:
            gen = torch.Generator().manual_seed(depth)
            tensors = {}
            for k, t in seeded(depth).tensors.items():
                if k.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "downsample.1.weight")):
                    t = 1 + 0.2 * torch.randn(t.shape, generator=gen)
                elif k.endswith(("bn1.bias", "bn2.bias", "bn3.bias", "downsample.1.bias")):
                    t = 0.1 * torch.randn(t.shape, generator=gen)
                tensors[k] = t
            firsts = [tuple(t.flatten()[:3].tolist()) for t in tensors.values() if t.is_floating_point()]
            assert len(set(firsts)) == len(firsts)  # no two tensors alike
            _DISTINCT[depth] = Source2D(tensors, f"distinct:resnet{depth}", MEMORY, tensors_sha256(tensors), depth)
        return _DISTINCT[depth]

    return get


# -- torchvision r3d_18 / mc3_18 ----------------------------------------------------------------

def torchvision_video_to_2d(blocks=(2, 2, 2, 2)) -> dict[str, str]:
    """torchvision's video ResNet-18 module names -> torchvision's ResNet-18, written out."""
    m = {"stem.0": "conv1", "stem.1": "bn1"}
    for stage, n in enumerate(blocks, start=1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            for c in (1, 2):
                m[f"{p}.conv{c}.0"], m[f"{p}.conv{c}.1"] = f"{p}.conv{c}", f"{p}.bn{c}"
            if stage > 1 and b == 0:
                m[f"{p}.downsample.0"], m[f"{p}.downsample.1"] = f"{p}.downsample.0", f"{p}.downsample.1"
    return m


@pytest.mark.parametrize("factory", ["r3d_18", "mc3_18"])
def test_torchvision_video_resnets_from_resnet18_center(factory, source):
    from torchvision.models import video

    src = source(18).tensors
    torch.manual_seed(0)
    model = getattr(video, factory)()
    before = snapshot(model)
    report = inflate_into(model, src, method="center")
    after = model.state_dict()
    names = torchvision_video_to_2d()
    expected_keys = set()
    for mod3, mod2 in names.items():
        for k, t in model.get_submodule(mod3).state_dict().items():
            key, skey = f"{mod3}.{k}", f"{mod2}.{k}"
            expected_keys.add(key)
            want = inflate_kernel(src[skey], t.shape[2], "center") if t.dim() == 5 else src[skey]
            assert torch.equal(after[key], want), key
            entry = report.action_of(key)
            assert entry.source == skey
            assert entry.action == ("inflated" if t.dim() == 5 and t.shape[2] > 1 else "copied"), key
    assert set(after) - expected_keys == {"fc.weight", "fc.bias"}  # 400 classes: no 2D counterpart
    for key in ("fc.weight", "fc.bias"):
        assert torch.equal(after[key], before[key]) and report.action_of(key).action == "untouched"
    assert report.unused_2d == ["fc.weight", "fc.bias"] and report.untouched_layers == []
    if factory == "mc3_18":  # 3x3x3 in layer1 only, 1x3x3 after
        assert report.action_of("layer1.0.conv1.0.weight").action == "inflated"
        assert report.action_of("layer2.0.conv1.0.weight").action == "copied"

    checks = prove_layers(model, report)
    assert len(checks) == 20 and all(c.passed for c in checks)
    assert all(c.frames.clean == c.frames.length for c in checks)  # centre: every frame
    whole = static_clip_check(model, report)  # r3d has no max pool after its stem
    assert not whole.applicable and "layer1.0.conv1.0" in whole.reason

    if factory == "mc3_18":  # a 2% error in one kernel fails that layer, and only it
        with torch.no_grad():
            model.get_submodule("layer1.1.conv1.0").weight.mul_(1.02)
        failed = [c.name for c in prove_layers(model, report) if not c.passed]
        assert failed == ["layer1.1.conv1.0"]


def torchvision_video_to_hf(module: str) -> str:
    """torchvision's video ResNet-18 names -> transformers' ResNet (other names, same structure)."""
    parts = module.split(".")
    if parts[0] == "stem":
        return "resnet.embedder.embedder." + ("convolution" if parts[1] == "0" else "normalization")
    if parts[0] == "fc":
        return "classifier.1"
    stage, block, unit, which = int(parts[0][5:]) - 1, parts[1], parts[2], parts[3]
    inner = "convolution" if which == "0" else "normalization"
    unit = "shortcut" if unit == "downsample" else f"layer.{int(unit[4:]) - 1}"
    return f"resnet.encoder.stages.{stage}.layers.{block}.{unit}.{inner}"


def test_a_2d_module_with_other_names_is_aligned_by_structure():
    from torchvision.models.video import r3d_18
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(1)
    hf = ResNetForImageClassification(ResNetConfig(depths=[2, 2, 2, 2], layer_type="basic", embedding_size=64,
                                                   hidden_sizes=[64, 128, 256, 512], num_labels=1000)).eval()
    with torch.no_grad():  # distinct BN values: the fresh ones are all ones and zeros
        for m in hf.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 2)
    src = hf.state_dict()
    model = r3d_18(num_classes=1000)
    report = inflate_into(model, hf, method="mean")
    assert report.source.depth is None and report.source.kind == "in-memory"
    assert report.unused_2d == [] and report.summary()["untouched"]["tensors"] == 0  # 1000 classes: fc copied
    assert report.action_of("fc.weight").action == "copied"
    modules = list(torchvision_video_to_2d()) + ["fc"]
    for mod in modules:
        for k, t in model.get_submodule(mod).state_dict().items():
            skey = f"{torchvision_video_to_hf(mod)}.{k}"
            assert report.action_of(f"{mod}.{k}").source == skey
            want = inflate_kernel(src[skey], t.shape[2], "mean") if t.dim() == 5 else src[skey]
            assert torch.equal(t, want), (mod, k)
    assert all(c.passed for c in prove_layers(model, report, layers={"stem.0", "layer2.0.downsample.0"}))


# -- pytorchvideo slow_r50 / slowfast_r50 against the named-arch path ---------------------------

def named_in_pytorchvideo(src, arch, two: bool, overrides=None):
    """The named-arch path (prepare -> native tensors) in pytorchvideo names, with the set of
    pytorchvideo keys that came from the 2D net (the rest are fresh there)."""
    inflation = prepare(src, arch, method="mean", overrides=overrides)
    native = inflation.state_dict()
    out, pairs, _ = from_native(native, SCHEMES["pytorchvideo"], two, "named")
    fresh = {e.key for e in inflation.plan.entries if e.action == FRESH}
    from_2d = {new for old, new in pairs if new is not None and old not in fresh}
    return out, from_2d


def test_pytorchvideo_slow_r50_equals_named_slowonly_r50(source):
    from pytorchvideo.models.hub import slow_r50

    src = source(50)
    model = slow_r50(pretrained=False)
    before = snapshot(model)
    report = inflate_into(model, src.tensors, method="mean")
    named, from_2d = named_in_pytorchvideo(src, "slowonly_r50", two=False)
    after = model.state_dict()
    touched = {t.key for t in report.tensors if t.action != "untouched"}
    assert touched == from_2d
    for key in from_2d:
        assert torch.equal(after[key], named[key]), key  # bit for bit
    assert {t.key for t in report.tensors if t.action == "untouched"} == {"blocks.5.proj.weight", "blocks.5.proj.bias"}
    assert torch.equal(after["blocks.5.proj.weight"], before["blocks.5.proj.weight"])
    assert report.action_of("blocks.3.res_blocks.0.branch2.conv_a.weight").action == "inflated"


def test_pytorchvideo_slowfast_r50_slow_pathway_equals_named_path_fast_untouched(source):
    from pytorchvideo.models.hub import slowfast_r50

    src = source(50)
    model = slowfast_r50(pretrained=False)
    before = snapshot(model)
    with pytest.raises(Inflate3dError, match=r"strict: 114 conv / norm layers .* blocks\.0\.multipathway_blocks\.1\.conv"):
        inflate_into(model, src.tensors, method="mean", strict=True)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # refused: nothing changed
    report = inflate_into(model, src.tensors, method="mean")
    after = model.state_dict()
    # fusion kernel 7 (alpha 4), fusion conv+BN: slowfast_r50_8x8 with lateral_norm
    named, from_2d = named_in_pytorchvideo(src, "slowfast_r50_8x8", two=True,
                                           overrides={"slow_pathway": {"lateral_norm": True}})
    assert {t.key for t in report.tensors if t.action != "untouched"} == from_2d
    for key in from_2d:
        assert ".multipathway_blocks.0." in key  # the slow pathway only
        assert torch.equal(after[key], named[key]), key
    for key in after.keys() - from_2d:  # fast pathway, fusion, head: as the model had them
        assert torch.equal(after[key], before[key]), key
    assert any("multipathway_fusion" in k for k in after.keys() - from_2d)
    padded = {t.key: t.pad for t in report.padded}
    assert padded == {f"blocks.{s}.multipathway_blocks.0.res_blocks.0.{c}.weight": pad
                      for s, pad in zip((1, 2, 3, 4), (16, 64, 128, 256))
                      for c in ("branch1_conv", "branch2.conv_a")}
    for key, pad in padded.items():
        assert not after[key][:, -pad:].any() and after[key][:, :-pad].abs().sum() > 0
    checks = prove_layers(model, report)
    assert len(checks) == 53 and all(c.passed for c in checks)
    whole = static_clip_check(model, report)
    assert not whole.applicable and "not one clip" in whole.reason  # two inputs: no 2D counterpart
    json.dumps({**report.to_json(), **proof_json(checks, whole)})  # plain ints (pytorchvideo has numpy ones)
    conv = "blocks.3.multipathway_blocks.0.res_blocks.0.branch2.conv_a"
    with torch.no_grad():  # a lateral channel that is not zero changes the slow pathway: caught
        model.get_submodule(conv).weight[:, -1] = 0.01
    assert [c.passed for c in prove_layers(model, report, layers={conv})] == [False]


# -- a 3D ResNet written here, names unlike any scheme's -------------------------------------------

class Unit(nn.Module):
    def __init__(self, cin, cout, stride, temporal):
        super().__init__()
        kt = 3 if temporal else 1
        self.first = nn.Conv3d(cin, cout, (kt, 3, 3), (1, stride, stride), (kt // 2, 1, 1), bias=False)
        self.first_norm = nn.BatchNorm3d(cout)
        self.second = nn.Conv3d(cout, cout, (kt, 3, 3), 1, (kt // 2, 1, 1), bias=False)
        self.second_norm = nn.BatchNorm3d(cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv3d(cin, cout, 1, (1, stride, stride), bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):  # main branch first, then the shortcut (torchvision's order)
        y = self.second_norm(self.second(torch.relu(self.first_norm(self.first(x)))))
        return torch.relu(y + (x if self.skip is None else self.skip(x)))


class Clip18(nn.Module):
    """Slow-only ResNet-18 (1x7x7 stem, 3x3x3 units in the last two stages) in its own words."""

    def __init__(self, extra_conv: bool = False, twin_stem: bool = False):
        super().__init__()
        self.trunk = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.trunk_bn = nn.BatchNorm3d(64)
        self.twin = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False) if twin_stem else None
        self.extra = nn.Conv3d(64, 64, 1, bias=False) if extra_conv else None
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        widths, cin, stages = (64, 128, 256, 512), 64, []
        for i, w in enumerate(widths):
            stages.append(nn.ModuleList([Unit(cin, w, 1 if i == 0 else 2, i >= 2), Unit(w, w, 1, i >= 2)]))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Linear(512, 1000)

    def forward(self, x):
        y = self.trunk(x) + (self.twin(x) if self.twin is not None else 0)
        x = self.pool(torch.relu(self.trunk_bn(y)))
        if self.extra is not None:
            x = self.extra(x)
        for stage in self.stages:
            for unit in stage:
                x = unit(x)
        return self.classifier(x.mean(dim=(2, 3, 4)))


def clip18_to_native(key: str) -> str:
    """This net's names -> the named arch's (mmaction2), written out for the test."""
    parts = key.split(".")
    if parts[0] == "trunk":
        return "backbone.conv1.conv." + parts[1]
    if parts[0] == "trunk_bn":
        return "backbone.conv1.bn." + parts[1]
    if parts[0] == "classifier":
        return "cls_head.fc_cls." + parts[1]
    _, s, u, mod, *rest = parts
    unit = f"backbone.layer{int(s) + 1}.{u}"
    if mod == "skip":
        return f"{unit}.downsample.{'conv' if rest[0] == '0' else 'bn'}.{rest[1]}"
    conv = {"first": "conv1.conv", "first_norm": "conv1.bn", "second": "conv2.conv", "second_norm": "conv2.bn"}
    return f"{unit}.{conv[mod]}.{rest[0]}"


@pytest.mark.parametrize("method", ["mean", "center"])
def test_own_3d_resnet_gets_the_named_arch_values_and_the_whole_model_check(method, source):
    src = source(18)
    model = Clip18()
    report = inflate_into(model, src.tensors, method=method)
    named = prepare(src, "slowonly_r18", method=method, head="imagenet").state_dict()
    after = model.state_dict()
    assert {clip18_to_native(k) for k in after} == set(named)
    for key, t in after.items():
        assert torch.equal(t, named[clip18_to_native(key)]), key
    assert report.summary()["untouched"]["tensors"] == 0
    if method == "mean":  # (centre: the torchvision tests prove each layer)
        assert all(c.passed for c in prove_layers(model, report))

    frames = 4 if method == "center" else 19
    whole = static_clip_check(model, report, frames=frames, size=16)
    assert whole.applicable and whole.passed, whole.reason
    by = {c.name: c for c in whole.checks}
    assert len(by) == (41 if method == "center" else 40)  # every aligned layer's output (+ logits)
    if method == "mean":  # 8 temporal convs of radius 1 before the end: frames 8..10 of 19
        assert (by["stages.3.1.second_norm"].frames.lo, by["stages.3.1.second_norm"].frames.hi) == (8, 10)
        assert by["stages.1.1.second_norm"].frames.clean == 19
        assert "classifier" not in by  # pooled over frames that saw padding: not guaranteed
        return
    assert by["stages.3.1.second_norm"].frames.clean == 4 and "classifier" in by  # centre: every frame, logits
    with torch.no_grad():
        model.stages[2][0].skip[1].running_mean.add_(0.05)  # a wrong BN statistic fails from there on
    bad = static_clip_check(model, report, frames=frames, size=16)
    assert not bad.passed and by["stages.2.0.skip.1"].max_rel < 1e-6
    assert [c.name for c in bad.checks if not c.passed][0] == "stages.2.0.skip.1"


def test_non_corresponding_model_is_refused_naming_its_first_odd_layer(source):
    model = Clip18(extra_conv=True)
    before = snapshot(model)
    with pytest.raises(Inflate3dError, match=r"extra \(conv 64->64 1x1\) is the first layer that does not "
                                             r"match: it stands where layer1\.0\.conv1 \(conv 64->64 3x3\) "
                                             r"should be but has a 1x1 spatial kernel, not 3x3"):
        inflate_into(model, source(18).tensors)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_ambiguity_is_an_error_asking_for_a_hint_and_the_hint_settles_it(source):
    src = source(18).tensors
    model = Clip18(twin_stem=True)
    with pytest.raises(Inflate3dError, match=r"ambiguous: both trunk and twin .* fit conv1 .*--hint twin="):
        inflate_into(model, src)
    report = inflate_into(model, src, hints={"trunk": "conv1"})
    assert report.action_of("trunk.weight").source == "conv1.weight"
    assert report.action_of("twin.weight").action == "untouched" and report.untouched_layers == ["twin"]
    with pytest.raises(Inflate3dError, match="strict: 1 conv / norm layers .*: twin"):
        inflate_into(Clip18(twin_stem=True), src, hints={"trunk": "conv1"}, strict=True)
    with pytest.raises(Inflate3dError, match="cannot take layer1.0.bn1"):
        inflate_into(Clip18(), src, hints={"trunk": "layer1.0.bn1"})


def test_build_model_bootstraps_a_named_arch_in_one_line_with_the_inflate_engine(source):
    import inflate3d

    src = source(18)
    model = inflate3d.build_model("i3d_r18", pretrained2d=src.tensors, method="center", num_classes=None)
    named = prepare(src, "i3d_r18", method="center").state_dict()
    got = model.state_dict()
    assert list(got) == list(named) and all(torch.equal(got[k], named[k]) for k in named)
    with_fc = inflate3d.build_model("slowonly_r18", pretrained2d=src.tensors, num_classes="imagenet")
    assert torch.equal(with_fc.cls_head.fc_cls.weight, src.tensors["fc.weight"])
    with pytest.raises(Inflate3dError, match="is a ResNet-18 but slowonly_r50 needs a ResNet-50"):
        inflate3d.build_model("slowonly_r50", pretrained2d=src.tensors)
