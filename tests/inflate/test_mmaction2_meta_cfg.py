"""An mmaction2 checkpoint keeps its training config in ``meta['cfg']``: its backbone states what the
weights cannot (temporal strides and pools, alpha), so the file names its own architecture where
the weights fit several (i3d_r50 and i3d_r50_8x8 were told apart by convention), each fact with
its source, and conversions record it."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from inflate3d.cli import main
from inflate3d.slowfast.archs import build_model

DATA = Path(__file__).parents[1] / "data"
PRETTY = (DATA / "mmengine_pretty_text_slowfast_8x8.py.txt").read_text()  # mmengine 0.10.7's pretty_text
I3D = (DATA / "mmengine_pretty_text_i3d_r50.py.txt").read_text()


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


def _checkpoint(path, arch: str, cfg: str | None, **overrides):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=5, **overrides)
    meta = {"epoch": 3, **({"cfg": cfg} if cfg else {})}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path


def test_the_cfg_tells_i3d_r50_from_its_8x8_twin(tmp_path):
    for arch, t in (("i3d_r50", 2), ("i3d_r50_8x8", 1)):
        cfg = I3D.replace("conv1_stride_t=2", f"conv1_stride_t={t}").replace("pool1_stride_t=2", f"pool1_stride_t={t}")
        path = _checkpoint(tmp_path / f"{arch}.pth", arch, cfg)
        doc = json.loads(run("inspect", path, "--json").output)["architecture"]
        assert doc["matches"]["name"] == arch and doc["matches"]["settings"] == ""
        assert doc["facts"]["conv1_stride_t"] == {"value": t, "source": "checkpoint meta cfg (model.backbone.conv1_stride_t)"}
        assert not any("convention" in n for n in doc["notes"])
        out = tmp_path / f"{arch}.pyth"
        assert json.loads(run("convert", path, "--to", "pyslowfast", "-o", out, "--json").output)["arch"] == arch
    shown = [line for line in run("inspect", path).output.splitlines() if line.startswith("metadata.cfg")]
    assert len(shown) == 1 and shown[0].endswith(f"({len(cfg):,} characters, {len(cfg.splitlines())} lines; whole in --json)")
    assert json.loads(run("inspect", path, "--json").output)["metadata"]["cfg"] == cfg
    without = _checkpoint(tmp_path / "plain.pth", "i3d_r50_8x8", None)
    doc = json.loads(run("inspect", without, "--json").output)["architecture"]  # nothing tells: a convention, said
    assert doc["matches"]["name"] == "i3d_r50" and any("convention: i3d_r50" in n for n in doc["notes"])


def test_the_cfg_gives_alpha_where_the_convention_would_not(tmp_path):
    """Fusion kernel 5 means alpha 8 by convention; this config says 4 (as PySlowFast's 8x8 NLN R50)."""
    cfg = PRETTY.replace("fusion_kernel=7", "fusion_kernel=5").replace(  # a pathway's non-local maths: no fact
        "            lateral=True,\n", "            lateral=True,\n            non_local_cfg=dict(mode='dot_product'),\n")
    assert "non_local_cfg" in cfg
    path = _checkpoint(tmp_path / "sf.pth", "slowfast_r50_4x16", cfg, resample_rate=4, speed_ratio=4)
    facts = json.loads(run("inspect", path, "--json").output)["architecture"]["facts"]
    assert facts["speed_ratio"] == {"value": 4, "source": "checkpoint meta cfg (model.backbone.speed_ratio)"}
    assert facts["resample_rate"]["value"] == 4
    assert facts["slow_pathway.conv1_stride_t"]["source"] == "checkpoint meta cfg (model.backbone.slow_pathway.conv1_stride_t)"
    conv = json.loads(run("convert", path, "-o", tmp_path / "sf.safetensors", "--json").output)
    assert conv["arch"] == "slowfast_r50_4x16" and "speed_ratio=4" in conv["arch_settings"]
    plain = _checkpoint(tmp_path / "plain.pth", "slowfast_r50_4x16", None)
    assert json.loads(run("inspect", plain, "--json").output)["architecture"]["facts"]["speed_ratio"]["value"] == 8


def test_tsm_takes_its_segments_from_the_cfg_or_set(tmp_path):
    """No weight carries a TSM's segment count: the TSM match ignored every fact, so a 16-segment
    file (or --set num_segments=16) was written as tsm_r50's 8."""
    cfg = ("model = dict(\n    backbone=dict(\n        depth=50,\n        num_segments=16,\n"
           "        pretrained='torchvision://resnet50',\n        shift_div=8,\n        type='ResNetTSM'),\n"
           "    type='Recognizer2D')\n")
    path = _checkpoint(tmp_path / "tsm16.pth", "tsm_r50", cfg, num_segments=16)
    doc = json.loads(run("inspect", path, "--json").output)["architecture"]
    assert doc["matches"] == {"name": "tsm_r50", "settings": "num_segments=16"}
    conv = json.loads(run("convert", path, "-o", tmp_path / "a.safetensors", "--json").output)
    assert conv["arch"] == "tsm_r50" and conv["arch_settings"] == "num_segments=16"
    plain = _checkpoint(tmp_path / "tsm.pth", "tsm_r50", None)
    assert json.loads(run("inspect", plain, "--json").output)["architecture"]["matches"]["settings"] == ""
    conv = json.loads(run("convert", plain, "--set", "num_segments=16", "-o", tmp_path / "b.safetensors",
                          "--json").output)
    assert conv["arch_settings"] == "num_segments=16"
