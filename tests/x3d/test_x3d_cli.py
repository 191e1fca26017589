"""X3D through the command line: convert (proven both ways), inspect, archs, and the refusals."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from x3d_peers import perturb_bn

from inflate3d import build_model
from inflate3d.cli import main

pv_hub = pytest.importorskip("pytorchvideo.models.hub")


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def pv_state():
    torch.manual_seed(0)
    model = pv_hub.x3d_xs(pretrained=False)
    perturb_bn(model, seed=1)
    return model.state_dict()


def test_pytorchvideo_file_to_mmaction2_and_back(tmp_path, pv_state):
    src = tmp_path / "X3D_XS.pyth"
    torch.save({"model_state": pv_state, "epoch": 1}, src)
    native = tmp_path / "mm.safetensors"
    data = json.loads(run("convert", src, "-o", native, "--arch", "x3d_xs", "--json").stdout)
    assert data["ok"] and data["arch"] == "x3d_xs" and data["tensors"] == 568
    assert [c["detail"] for c in data["checks"]] == ["read back from disk: 568 tensors bit for bit as written",
                                                     "loads strictly into x3d_xs (568 tensors, all shapes equal)",
                                                     "converts back to pytorchvideo bit for bit (563 tensors)"]
    assert all(c["passed"] for c in data["checks"])
    assert any("identity BN was inserted" in n for n in data["notes"])
    out = tmp_path / "pv.pth"
    data = json.loads(run("convert", native, "--to", "pytorchvideo", "--format", "pth", "-o", out, "--json").stdout)
    assert data["arch"] == "x3d_xs"  # the weights cannot tell XS from S: the file's metadata can
    assert "architecture x3d_xs as the file's metadata records (--arch overrides it)" in data["notes"]
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {"model_state", "inflate3d"} and list(ckpt["model_state"]) == list(pv_state)
    assert all(torch.equal(ckpt["model_state"][k], v) for k, v in pv_state.items())
    inspected = json.loads(run("inspect", src, "--json").stdout)
    assert inspected["scheme"] == "pytorchvideo" and inspected["architecture"]["family"] == "x3d"
    assert inspected["architecture"]["matches"] == "x3d_s" and inspected["architecture"]["stage_blocks"] == [3, 5, 11, 7]


def test_native_to_pytorchvideo_proves_the_fold_in_function(tmp_path):
    torch.manual_seed(0)
    model = build_model("x3d_xs", num_classes=5)
    perturb_bn(model.backbone.layer1[0].downsample, seed=2)
    src = tmp_path / "native.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, src)
    out = tmp_path / "pv.safetensors"
    data = json.loads(run("convert", src, "--to", "pytorchvideo", "-o", out, "--json").stdout)
    assert data["checks"][2]["detail"] == "converts back to mmaction2 bit for bit (561 tensors)"
    assert data["checks"][3]["name"] == "round_trip_in_function"
    assert data["checks"][3]["detail"].startswith("7 tensors of the folded shortcut BN (backbone.layer1.0) round-trip in function")
    assert "blocks.1.res_blocks.0.branch1_norm.weight" not in load_file(out)


def test_inspect_and_convert_name_the_x3d_the_file_records(tmp_path, pv_state):
    """XS, S and M have the same weights: the file's metadata (inspect said x3d_s beside a recorded
    x3d_xs), else the clip PySlowFast's cfg trained on, names the one it is; else a stated convention."""
    torch.save({"model_state": pv_state}, tmp_path / "pv.pyth")
    run("convert", tmp_path / "pv.pyth", "--arch", "x3d_xs", "-o", tmp_path / "xs.safetensors")
    run("convert", tmp_path / "xs.safetensors", "--to", "pytorchvideo", "--format", "pth", "-o", tmp_path / "xs.pth")
    for path in ("xs.safetensors", "xs.pth"):
        assert json.loads(run("inspect", tmp_path / path, "--json").stdout)["architecture"]["matches"] == "x3d_xs"
    refused = run("inspect", tmp_path / "xs.pth", "--set", "fc1_bias=true", ok=(2,))  # it was ignored
    assert "--set fc1_bias: an X3D's settings follow from its weights and --arch; the weights and arch say " \
        "fc1_bias=False" in refused.output
    run("inspect", tmp_path / "xs.pth", "--set", "fc1_bias=false")  # what the weights say may be stated
    for frames, crop, name in ((4, 160, "x3d_xs"), (16, 224, "x3d_m"), (16, None, "x3d_m"), (13, 999, None)):
        cfg = f"DATA:\n  NUM_FRAMES: {frames}\n" + (f"  TRAIN_CROP_SIZE: {crop}\n" if crop else "") + "MODEL:\n  ARCH: x3d\n"
        src = tmp_path / f"cfg{frames}_{crop}.pyth"
        torch.save({"model_state": pv_state, "cfg": cfg}, src)
        arch = json.loads(run("inspect", src, "--json").stdout)["architecture"]
        converted = json.loads(run("convert", src, "-o", tmp_path / f"{src.stem}.safetensors", "--json").stdout)
        assert arch["matches"] == converted["arch"] == (name or "x3d_s"), (frames, crop)
        assert any(("by the checkpoint cfg" if name else "by convention") in n for n in arch["notes"])


def test_archs_lists_x3d_with_origins():
    by_name = {a["name"]: a for a in json.loads(run("archs", "--json").stdout)["archs"]}
    with torch.device("meta"):  # pytorchvideo's own count, plus the layer1.0 shortcut BN it leaves out
        assert by_name["x3d_xs"]["parameters"] == sum(p.numel() for p in pv_hub.x3d_xs().parameters()) + 2 * 24
        assert by_name["x3d_l"]["parameters"] == sum(p.numel() for p in pv_hub.x3d_l().parameters()) + 2 * 24
    assert by_name["x3d_m"]["clip"] == [16, 224, 224] and by_name["x3d_m"]["family"] == "x3d"
    assert "x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py" in by_name["x3d_m"]["description"]
    assert "configs/Kinetics/X3D_L.yaml" in by_name["x3d_l"]["description"]


def test_refusals(tmp_path, pv_state):
    src = tmp_path / "x.pyth"
    torch.save({"model_state": pv_state}, src)
    result = run("inflate", "--arch", "x3d_s", "-o", tmp_path / "o.safetensors", ok=(2,))
    assert "the x3d family does not support inflation" in result.output
    result = run("convert", src, "--to", "caffe2", "--format", "pkl", "-o", tmp_path / "o.pkl", ok=(2,))
    assert "X3D converts between mmaction2, pyslowfast, pytorchvideo" in result.output
    assert not (tmp_path / "o.pkl").exists()
