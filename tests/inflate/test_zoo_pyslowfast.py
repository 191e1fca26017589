"""Every ResNet-family config of PySlowFast's Kinetics zoo: its keys and shapes (from PySlowFast's own
builder) and its config facts are recognised as the architecture that computes what PySlowFast
computes, and every key is mapped."""
from __future__ import annotations

import gzip
import json
import sys

import pytest
import torch
import yaml
from click.testing import CliRunner

from inflate3d.cli import main
from inflate3d.inflate.convert import convert
from inflate3d.slowfast.archs import build_model, setting_of

from pathlib import Path

DATA = Path(__file__).parents[1] / "data"

ZOO = json.loads(gzip.open(DATA / "pyslowfast_zoo_resnet.json.gz", "rt").read())["configs"]

EXPECTED = {  # config file -> the named architecture
    "C2D_8x8_R50": "c2d_r50_8x8", "I3D_8x8_R50": "i3d_r50_8x8", "I3D_8x8_R101": "i3d_r101_8x8",
    "SLOW_4x16_R50": "slowonly_r50", "SLOW_8x8_R50": "slowonly_r50",
    "SLOWFAST_4x16_R50": "slowfast_r50_4x16", "SLOWFAST_8x8_R50": "slowfast_r50_8x8",
    "SLOWFAST_8x8_R50_stepwise": "slowfast_r50_8x8",
    "SLOWFAST_8x8_R101_101_101": "slowfast_r101_8x8_fk5",
    "SLOWFAST_8x8_R101_50_101": "slowfast_r101_8x8_fk5",  # with the slow pathway's layer3 pattern
    "SLOWFAST_8x8_R101_50_50": "slowfast_r101_16x8_50_50",  # the same network; 32- not 64-frame clips
    "SLOWFAST_16x8_R101_50_50": "slowfast_r101_16x8_50_50",
    # non-local nets: the same architectures with non-local blocks where the names put them
    "C2D_NLN_8x8_R50": "c2d_r50_8x8", "I3D_NLN_8x8_R50": "i3d_r50_8x8", "I3D_NLN_8x8_R101": "i3d_r101_8x8",
    "SLOW_NLN_4x16_R50": "slowonly_r50", "SLOW_NLN_8x8_R50": "slowonly_r50",
    "SLOWFAST_NLN_4x16_R50": "slowfast_r50_4x16", "SLOWFAST_NLN_8x8_R50": "slowfast_r50_4x16",  # alpha 4 set
    "SLOWFAST_NLN_16x8_R101_50_50": "slowfast_r101_16x8_50_50",
}
PLAIN = ZOO


def _meta(entries):
    return {k: torch.empty(shape, device="meta") for k, shape in entries}


def _cfg(c: dict) -> str:
    """The YAML PySlowFast's save_checkpoint stores (the parts that name the architecture)."""
    return yaml.safe_dump({"MODEL": {"ARCH": c["ARCH"], "NUM_CLASSES": c["NUM_CLASSES"]},
                           "RESNET": {"DEPTH": c["DEPTH"]},
                           "SLOWFAST": {k: c[k] for k in ("ALPHA", "BETA_INV", "FUSION_CONV_CHANNEL_RATIO",
                                                          "FUSION_KERNEL_SZ")},
                           "DATA": {"NUM_FRAMES": c["NUM_FRAMES"], "SAMPLING_RATE": c["SAMPLING_RATE"]},
                           "NONLOCAL": {"INSTANTIATION": c.get("NONLOCAL_INSTANTIATION", "dot_product")}})


@pytest.mark.parametrize("config", sorted(PLAIN))
def test_every_zoo_config_is_its_own_architecture(config):
    entry = ZOO[config]
    c = entry["config"]
    conv = convert(_meta(entry["state_dict"]), source=None, target="mmaction2", origin=config,
                   config=_cfg(c))
    assert conv.source_scheme == "pyslowfast"
    assert conv.arch_name == EXPECTED[config.rsplit("/", 1)[1][:-5]]
    assert all(n is not None for _, n, _ in conv.key_map) and len(conv.key_map) == len(entry["state_dict"])
    arch, overrides = conv.arch_name, conv.arch_overrides
    from inflate3d.slowfast.archs import ARCHS

    if c["ARCH"] == "slowfast":
        assert setting_of(ARCHS[arch], "speed_ratio", overrides) == c["ALPHA"]
        assert setting_of(ARCHS[arch], "slow_pathway.fusion_kernel", overrides) == c["FUSION_KERNEL_SZ"]
        assert conv.arch.facts["speed_ratio"].source == "checkpoint cfg (SLOWFAST.ALPHA)"
    else:  # PySlowFast's stems keep every frame; I3D and C2D pool time after res2, Slow does not
        assert setting_of(ARCHS[arch], "conv1_stride_t", overrides) == 1
        assert setting_of(ARCHS[arch], "pool1_stride_t", overrides) == 1
        assert setting_of(ARCHS[arch], "with_pool2", overrides) == (c["ARCH"] in ("i3d", "c2d"))
    nl_cfg = (overrides.get("slow_pathway", overrides)).get("non_local_cfg")
    if "NLN" in config:  # PySlowFast's non-local: pooled before phi/g, a conv_out bias, its instantiation
        mode = {"softmax": "embedded_gaussian", "dot_product": "dot_product"}[c["NONLOCAL_INSTANTIATION"]]
        assert nl_cfg == {"mode": mode, "use_scale": mode == "embedded_gaussian", "pool_first": True,
                          "out_bias": True}
        assert conv.arch.facts["non_local_cfg.mode"].source.startswith("checkpoint cfg (NONLOCAL.INSTANTIATION")
    else:
        assert nl_cfg is None
    # the named network has exactly these keys and shapes
    model = build_model(arch, num_classes=c["NUM_CLASSES"], device="meta", init=False, **overrides)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in conv.tensors.items()}


def test_alpha_comes_from_the_cfg_else_a_stated_convention_and_set_overrides(tmp_path):
    """PySlowFast's SLOWFAST_NLN_8x8_R50 fuses with kernel 5 at alpha 4: the weights alone look like
    the 4x16 (alpha 8). The cfg says 4; without it, the convention is printed with the override."""
    torch.manual_seed(0)
    native = build_model("slowfast_r50_4x16", num_classes=5, slow_pathway={"lateral_norm": True}).state_dict()
    pysf = convert(native, source=None, target="pyslowfast", origin="native").tensors
    cfg = {"ARCH": "slowfast", "NUM_CLASSES": 5, "DEPTH": 50, "ALPHA": 4, "BETA_INV": 8,
           "FUSION_CONV_CHANNEL_RATIO": 2, "FUSION_KERNEL_SZ": 5, "NUM_FRAMES": 32, "SAMPLING_RATE": 2}
    with_cfg, bare = tmp_path / "with_cfg.pyth", tmp_path / "bare.pyth"
    torch.save({"model_state": pysf, "epoch": 1, "cfg": _cfg(cfg)}, with_cfg)
    torch.save({"model_state": pysf, "epoch": 1}, bare)
    runner = CliRunner()

    out = json.loads(runner.invoke(main, ["inspect", str(with_cfg), "--json"]).output)["architecture"]
    assert out["facts"]["speed_ratio"] == {"value": 4, "source": "checkpoint cfg (SLOWFAST.ALPHA)"}
    assert out["config"]["SLOWFAST.ALPHA"] == 4 and out["config"]["MODEL.ARCH"] == "slowfast"
    assert out["matches"]["name"] == "slowfast_r50_4x16" and "speed_ratio=4" in out["matches"]["settings"]

    result = runner.invoke(main, ["convert", str(bare), "--dry-run"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "assumed speed_ratio=8: convention" in text and "--set speed_ratio=N" in text

    out = json.loads(runner.invoke(main, ["inspect", str(bare), "--set", "speed_ratio=4", "--json"]).output)
    assert out["architecture"]["facts"]["speed_ratio"] == {"value": 4, "source": "--set"}
    assert "speed_ratio=4" in out["architecture"]["matches"]["settings"]


def test_inspect_shows_each_fact_with_its_source(tmp_path, monkeypatch):
    """Each fact with its source; the cfg is read without PyYAML (not a dependency: a user's install has none)."""
    torch.manual_seed(0)
    native = build_model("i3d_r50_8x8", num_classes=5).state_dict()
    pysf = convert(native, source=None, target="pyslowfast", origin="native").tensors
    path = tmp_path / "i3d.pyth"
    cfg = dict(ZOO["configs/Kinetics/I3D_8x8_R50.yaml"]["config"], NUM_CLASSES=5)
    torch.save({"model_state": pysf, "cfg": _cfg(cfg)}, path)
    monkeypatch.setitem(sys.modules, "yaml", None)  # an import of it fails
    runner = CliRunner()
    assert "= i3d_r50_8x8" in " ".join(runner.invoke(main, ["inspect", str(path)]).output.split())
    facts = json.loads(runner.invoke(main, ["inspect", str(path), "--json"]).output)["architecture"]["facts"]
    assert facts["with_pool2"] == {"value": True, "source": "checkpoint cfg (MODEL.ARCH=i3d)"}
    assert facts["conv1_stride_t"] == {"value": 1, "source": "PySlowFast names: its ResNet stems keep every frame"}


def test_pyslowfast_c2d_becomes_mmaction2_c2d_and_computes_the_same(tmp_path):
    """PySlowFast's C2D (5-D kernels, T=1) and mmaction2's C2D (2-D kernels run per frame) are one
    network: --arch c2d_r50 squeezes the kernels, and the way back unsqueezes them bit for bit."""
    torch.manual_seed(0)
    ref = build_model("c2d_r50_8x8", num_classes=5).eval()
    with torch.no_grad():
        for k, t in ref.state_dict().items():
            if k.endswith(("running_mean", ".bias")):
                t.copy_(torch.randn(t.shape) * 0.1)
    pysf = convert(ref.state_dict(), source=None, target="pyslowfast", origin="native").tensors
    src = tmp_path / "C2D_8x8_R50.pyth"
    torch.save({"model_state": pysf}, src)
    out = tmp_path / "c2d_mm.safetensors"
    result = CliRunner().invoke(main, ["convert", str(src), "--arch", "c2d_r50", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "converts back to pyslowfast bit for bit" in result.output
    import inflate3d

    ours = inflate3d.load_model(out)
    assert ours.inflate3d_arch == "c2d_r50" and ours.state_dict()["backbone.conv1.conv.weight"].dim() == 4
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-5
