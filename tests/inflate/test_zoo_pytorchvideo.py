"""pytorchvideo's own hub models (ResNet family, random weights): convert to mmaction2 with the CLI,
``load_model`` the result and compute what pytorchvideo computes; convert back bit for bit and load
strictly into pytorchvideo's own network."""
from __future__ import annotations

import warnings

import pytest
import torch
from peer_models import randomise_bn
from click.testing import CliRunner

import inflate3d
from inflate3d.cli import main
from inflate3d.inflate.convert import convert
from inflate3d.io.load import load_checkpoint

warnings.filterwarnings("ignore", module="pytorchvideo")
hub = pytest.importorskip("pytorchvideo.models.hub")

SIZE = 32  # frames 32x32: the last stage is 1x1, so pytorchvideo's head pools everything
T = 4  # frames of a one-pathway clip, and of the slow pathway



# hub name -> (the architecture inflate3d must name, two pathways)
ALPHA = 4
MODELS = {
    "slow_r50": ("slowonly_r50", False),
    "i3d_r50": ("i3d_r50_8x8", False),
    "c2d_r50": ("c2d_r50_8x8", False),
    "csn_r101": ("csn_r101", False),
    "r2plus1d_r50": ("r2plus1d_r50", False),
    "slowfast_r50": ("slowfast_r50_8x8", True),
    "slowfast_r101": ("slowfast_r101_8x8_fk5", True),
    "slowfast_16x8_r101_50_50": ("slowfast_r101_16x8_50_50", True),
}


def _hub(name: str) -> torch.nn.Module:
    """pytorchvideo's own hub network, its head pools resized for a 32x32 clip (they hold no weights;
    some hub functions fix their size, so they are replaced after the build)."""
    model = getattr(hub, name)(pretrained=False)  # dropout: a no-op in eval mode
    if MODELS[name][1]:
        model.blocks[5].pool = torch.nn.ModuleList(torch.nn.AdaptiveAvgPool3d(1) for _ in range(2))
    else:
        model.blocks[-1].pool = torch.nn.AdaptiveAvgPool3d(1)
    return model


def _inputs(two: bool):
    g = torch.Generator().manual_seed(7)
    slow = torch.randn(1, 3, T, SIZE, SIZE, generator=g)
    return [slow, torch.randn(1, 3, T * ALPHA, SIZE, SIZE, generator=g)] if two else slow


def _convert(tmp_path, src, name, *args):
    out = tmp_path / name
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.parametrize("hub_name", list(MODELS))
def test_hub_model_converts_loads_and_computes_the_same(tmp_path, hub_name):
    arch, two = MODELS[hub_name]
    torch.manual_seed(0)
    theirs = randomise_bn(_hub(hub_name), 1)
    sd = theirs.state_dict()
    src = tmp_path / f"{hub_name}.pyth"
    torch.save({"model_state": sd}, src)

    native, log = _convert(tmp_path, src, "native.safetensors")
    assert f"architecture {arch}" in " ".join(log.split())
    ours = inflate3d.load_model(native)
    assert ours.inflate3d_arch == arch and not ours.training
    x = _inputs(two)
    with torch.inference_mode():
        expected = theirs(list(x) if two else x.clone())  # pytorchvideo mutates its input list
        got = ours(x)
    if torch.allclose(expected.sum(1), torch.ones(1, dtype=expected.dtype)):  # a softmax head in eval
        got = got.softmax(1)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-4

    # and back: the library call (the CLI's own proof already ran above), strictly into pytorchvideo
    back = convert(load_checkpoint(native).tensors, source=None, target="pytorchvideo", origin="native").tensors
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    theirs.load_state_dict(back, strict=True)


def test_the_pool_block_shifts_pytorchvideo_stage_names():
    """pytorchvideo's I3D numbers its stages 1, 3, 4, 5 (blocks.2 is the pool) and its head 6."""
    torch.manual_seed(0)
    sd = hub.i3d_r50(pretrained=False).state_dict()
    conv = convert(sd, source=None, target="mmaction2", origin="i3d")
    assert conv.arch_name == "i3d_r50_8x8" and conv.arch_overrides == {}
    pairs = dict((s, n) for s, n, _ in conv.key_map)
    assert pairs["blocks.3.res_blocks.0.branch1_conv.weight"] == "backbone.layer2.0.downsample.conv.weight"
    assert pairs["blocks.5.res_blocks.2.branch2.conv_c.weight"] == "backbone.layer4.2.conv3.conv.weight"
    assert pairs["blocks.6.proj.weight"] == "cls_head.fc_cls.weight"
    facts = conv.arch.facts
    assert facts["with_pool2"].value is True and facts["with_pool2"].source.startswith("names")
    assert facts["conv1_stride_t"].value == 1
