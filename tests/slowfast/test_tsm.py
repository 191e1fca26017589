"""TSM: the shift by its definition, both namings, inflation from torchvision, boring-video checks."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from inflate3d.cli import main
from inflate3d.inflate import prepare
from inflate3d.inflate.convert import convert
from inflate3d.slowfast import build_model, count_parameters, temporal_shift
from inflate3d.verify import verify_inflated


def test_the_shift_element_by_element():
    """Seed 004: out[:, t, :fold] = x[:, t+1, :fold], out[:, t, fold:2fold] = x[:, t-1, ...], zeros at the ends."""
    n, t, c = 2, 4, 16
    x = torch.arange(n * t * c, dtype=torch.float32).view(n * t, c, 1, 1) + 1
    out = temporal_shift(x, t, 8).view(n, t, c)
    src = x.view(n, t, c)
    fold = c // 8
    for b in range(n):
        for f in range(t):
            for ch in range(c):
                if ch < fold:
                    want = src[b, f + 1, ch] if f + 1 < t else 0.0
                elif ch < 2 * fold:
                    want = src[b, f - 1, ch] if f >= 1 else 0.0
                else:
                    want = src[b, f, ch]
                assert out[b, f, ch] == want, (b, f, ch)


@pytest.mark.parametrize("name", ["tsm_r50", "tsm_r101"])
def test_mmaction2_names_equal_the_reference(name, mmaction2_reference):
    model = build_model(name, device="meta")
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == mmaction2_reference[name]["keys"]
    assert count_parameters(model) == mmaction2_reference[name]["parameters"]


@pytest.mark.parametrize("depth,shifted", [(18, 8), (34, 16), (50, 16), (101, 18), (152, 26)])
def test_original_tsm_names(depth, shifted, seeded):
    native = prepare(seeded(depth), f"tsm_r{depth}", head="imagenet").state_dict()
    orig = convert(native, source=None, target="tsm", origin="x").tensors
    net_keys = [k for k in orig if k.endswith(".net.weight")]
    assert len(net_keys) == shifted and all(k.startswith("base_model.layer") and ".conv1.net." in k for k in net_keys)
    assert {k.replace(".net", "").replace("base_model.", "").replace("new_fc", "fc"): tuple(v.shape)
            for k, v in orig.items()} == {k: tuple(v.shape) for k, v in seeded(depth).tensors.items()}
    # PyTorch's TSM checkpoints carry a DataParallel 'module.' prefix inside 'state_dict': both unwrap
    assert "new_fc.weight" in orig and "base_model.conv1.weight" in orig


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_inflation_copies_every_tensor_and_passes_the_boring_video(depth, seeded):
    src = seeded(depth)
    inflation = prepare(src, f"tsm_r{depth}", head="imagenet")
    sd = inflation.state_dict()
    assert {a: len(v) for a, v in inflation.plan.by_action().items() if v} == {"copied": len(sd)}
    for key, t in sd.items():  # every tensor is the 2D one, unchanged
        plain = key.replace(".net", "").replace("backbone.", "").replace("cls_head.fc_cls", "fc")
        plain = plain.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")
        plain = plain.replace(".conv.weight", ".weight")
        for n in ("1", "2", "3"):
            plain = plain.replace(f"conv{n}.bn.", f"bn{n}.")
        assert torch.equal(t, src.tensors[plain]), key
    ver = verify_inflated(sd, inflation.arch, src.tensors, depth=depth, origin="tsm", head_from_2d=True)
    assert ver.passed and max(c.max_rel for c in ver.checks) < 1e-12
    radius = sum(inflation.model.backbone.shifted_blocks())
    assert (ver.checks[4].frames.lo, ver.checks[4].frames.length) == (radius, 2 * radius + 2)
    # a corrupted tensor fails from its stage on
    sd["backbone.layer3.0.conv2.conv.weight"] = sd["backbone.layer3.0.conv2.conv.weight"] * 1.1
    bad = verify_inflated(sd, inflation.arch, src.tensors, depth=depth, origin="tsm", head_from_2d=True)
    assert [c.name for c in bad.checks if not c.passed] == ["layer3", "layer4", "logits"]


def test_frames_outside_the_radius_do_differ(seeded):
    src = seeded(18)
    model = build_model("tsm_r18", num_classes=None, init=False)
    model.load_state_dict(prepare(src, "tsm_r18").state_dict())
    for m in model.modules():
        if hasattr(m, "num_segments"):
            m.num_segments = 18
    from inflate3d.verify.boring import build_2d

    net2d = build_2d(src.tensors, 18).double()
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).double()
    with torch.inference_mode():
        feats = model.double().eval().backbone(image.unsqueeze(2).expand(-1, -1, 18, -1, -1))
        ref = net2d.layer4(net2d.layer3(net2d.layer2(net2d.layer1(net2d.maxpool(net2d.relu(net2d.bn1(net2d.conv1(image))))))))
    rel = [((feats[j] - ref[0]).abs().max() / ref.abs().max()).item() for j in range(18)]
    assert rel[8] < 1e-12 and rel[9] < 1e-12 and rel[7] > 1e-6 and rel[10] > 1e-6


def test_cli_inflate_and_convert_tsm(tmp_path, r18_file):
    out = tmp_path / "tsm.safetensors"
    result = CliRunner().invoke(main, ["inflate", str(r18_file), "--arch", "tsm_r18", "--head", "imagenet",
                                       "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verification"]["passed"]
    orig = tmp_path / "orig.pth"
    assert CliRunner().invoke(main, ["convert", str(out), "--to", "tsm", "--format", "pth", "-o", str(orig)]).exit_code == 0
    # the original TSM container keeps the inflation record: verify maps it back to native names
    result = CliRunner().invoke(main, ["verify", str(orig), "--against", str(r18_file), "--json"])
    assert result.exit_code == 0, result.output
    assert [c["name"] for c in json.loads(result.stdout)["verification"]["checks"]][-1] == "logits"
    tsn = tmp_path / "tsn.safetensors"
    assert CliRunner().invoke(main, ["convert", str(orig), "--to", "torchvision", "-o", str(tsn)]).exit_code == 0
    assert set(load_file(str(tsn))) == set(torch.load(r18_file, weights_only=True))
    back = tmp_path / "back.safetensors"
    refused = CliRunner().invoke(main, ["convert", str(tsn), "-o", str(back)])  # 2D names: it says so
    assert refused.exit_code == 2 and "pass --arch tsm_rNN or --from torchvision" in refused.stderr
    assert CliRunner().invoke(main, ["convert", str(tsn), "--from", "torchvision", "-o", str(back)]).exit_code == 0
    assert CliRunner().invoke(main, ["diff", str(back), str(out)]).exit_code == 0
    info = json.loads(CliRunner().invoke(main, ["inspect", str(orig), "--json"]).stdout)
    assert info["scheme"] == "tsm" and info["architecture"]["matches"]["name"] == "tsm_r18"
    assert info["architecture"]["per_pathway"]["backbone"]["shifted_blocks"] == 8


# --- TSM's own semantics (mit-han-lab/temporal-shift-module), written out independently ---------

def _tsm_shift(x, n_segment, fold_div):
    """TSM's ``TemporalShift.shift``, as published."""
    nt, c, h, w = x.size()
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # shift left
    out[:, 1:, fold: 2 * fold] = x[:, :-1, fold: 2 * fold]  # shift right
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]  # not shift
    return out.view(nt, c, h, w)


def _tsm_temporal_pool(x, n_segment):
    """TSM's ``TemporalPool.temporal_pool``, element by element: frame t' of the output is the max
    of input frames 2t'-1, 2t', 2t'+1 (those that exist)."""
    nt, c, h, w = x.shape
    v = x.view(nt // n_segment, n_segment, c, h, w)
    out = torch.stack([torch.stack([v[:, max(2 * t - 1, 0): 2 * t + 2].amax(dim=1)[b]
                                    for t in range((n_segment + 1) // 2)]) for b in range(v.shape[0])])
    return out.reshape(-1, c, h, w)


def _tiny_tsm(**kwargs):
    from inflate3d.slowfast import ResNetTSM

    torch.manual_seed(0)
    net = ResNetTSM(18, num_segments=4, **kwargs)
    net.init_weights(torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # BN statistics that are not the identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


@pytest.fixture
def one_thread():
    """Small tensors: one thread (two spin against each other on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("temporal_pool", [False, True])
def test_shift_place_block_and_temporal_pool_follow_tsm(temporal_pool, one_thread):
    """shift_place='block' shifts the input of the whole block (its identity path too); with
    temporal_pool, layer2 first max-pools time by 2 and later stages shift over T/2 segments."""
    from inflate3d.slowfast.tsm import TemporalPool

    net = _tiny_tsm(shift_place="block", temporal_pool=temporal_pool)
    x = torch.randn(2 * 4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        got = net(x)
        ref = net.maxpool(net.conv1(x))
        segments = 4
        for i, name in enumerate(net.res_layers):
            layer = getattr(net, name)
            if isinstance(layer, TemporalPool):
                ref = _tsm_temporal_pool(ref, segments)
                segments, layer = segments // 2, layer.net
            for block in layer:
                ref = block.net(_tsm_shift(ref, segments, 8))
    assert isinstance(net.layer2, TemporalPool) == temporal_pool
    assert got.shape[0] == (4 if temporal_pool else 8)
    assert torch.allclose(got, ref, rtol=0, atol=1e-6)
    blockres = _tiny_tsm(shift_place="blockres", temporal_pool=temporal_pool)
    with torch.inference_mode():
        assert not torch.allclose(blockres(x), got, atol=1e-3)  # where the shift sits matters


def test_temporal_pool_is_tsm_max_pool_over_time():
    from inflate3d.slowfast.tsm import TemporalPool

    x = torch.randn(2 * 8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = TemporalPool(torch.nn.Identity(), 8)(x)
    assert torch.equal(out, _tsm_temporal_pool(x, 8)) and out.shape == (8, 3, 2, 2)


@pytest.mark.parametrize("temporal_pool", [False, True])
def test_tsm_head_averages_the_per_frame_scores(temporal_pool):
    """TSN's consensus: avgpool -> fc on each frame, then the mean over the segments."""
    from inflate3d.slowfast import TSMHead

    head = TSMHead(5, 16, num_segments=8, temporal_pool=temporal_pool, dropout_ratio=0.5).eval()
    head.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        head.fc_cls.bias.copy_(torch.arange(5.0))
    t = 4 if temporal_pool else 8
    x = torch.randn(3 * t, 16, 4, 4, generator=torch.Generator().manual_seed(1))
    per_frame = x.mean(dim=(2, 3)) @ head.fc_cls.weight.T + head.fc_cls.bias
    want = per_frame.view(3, t, 5).mean(dim=1)
    assert torch.allclose(head(x), want, rtol=0, atol=1e-6)
