"""convert and inspect from the command line: containers, formats, proof, dry runs, errors."""
from __future__ import annotations

import json
import pickle
import warnings

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

from inflate3d.cli import main

warnings.filterwarnings("ignore", module="pytorchvideo")
pv_slowfast = pytest.importorskip("pytorchvideo.models.slowfast")


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def pv_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("pv") / "slowfast.pyth"
    torch.save({"model_state": pv_slowfast.create_slowfast().state_dict(), "epoch": 3}, path)
    return path


def test_convert_pytorchvideo_to_mmaction2_pth(tmp_path, pv_file):
    out = tmp_path / "mm.pth"
    data = json.loads(run("convert", pv_file, "--format", "pth", "-o", out, "--json").stdout)
    assert data["ok"] and data["source_scheme"] == "pytorchvideo" and data["arch"] == "slowfast_r50_8x8"
    assert data["arch_settings"] == "slow_pathway.lateral_norm=True"
    assert {"name": "round_trip", "passed": True, "detail": "converts back to pytorchvideo bit for bit (662 tensors)"} in data["checks"]
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {"state_dict", "meta"} and ckpt["meta"]["source_scheme"] == "pytorchvideo"
    assert len(ckpt["state_dict"]) == 662


@pytest.mark.parametrize("to,fmt,top", [("pyslowfast", "pth", {"epoch", "model_state", "inflate3d"}),
                                        ("pytorchvideo", "pth", {"model_state", "inflate3d"}),
                                        ("caffe2", "pkl", {"blobs", "inflate3d"})])
def test_target_containers(tmp_path, pv_file, to, fmt, top):
    native = tmp_path / "native.safetensors"
    run("convert", pv_file, "-o", native)
    out = tmp_path / f"out.{fmt}"
    run("convert", native, "--to", to, "--format", fmt, "-o", out)
    obj = pickle.load(open(out, "rb"), encoding="latin1") if fmt == "pkl" else torch.load(out, weights_only=True)
    assert set(obj) == top
    inspected = json.loads(run("inspect", out, "--json").stdout)
    assert inspected["scheme"] == to and inspected["architecture"]["matches"]["name"] == "slowfast_r50_8x8"
    back = tmp_path / "back.safetensors"
    run("convert", out, "-o", back)  # and back to mmaction2, proven again
    with safe_open(str(back), "pt") as f:
        assert f.metadata()["source_scheme"] == to


def test_dtype_and_dry_run(tmp_path, pv_file):
    out = tmp_path / "half.safetensors"
    run("convert", pv_file, "--dtype", "bf16", "-o", out)
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("cls_head.fc_cls.weight").dtype == torch.bfloat16
    data = json.loads(run("convert", pv_file, "--to", "pyslowfast", "--dry-run", "--json").stdout)
    first = data["map"][0]
    assert first == {"source": "blocks.0.multipathway_blocks.0.conv.weight",
                     "native": "backbone.slow_path.conv1.conv.weight", "target": "s1.pathway0_stem.conv.weight"}
    assert list(tmp_path.iterdir()) == [out]


def test_inspect_reports_the_architecture(pv_file):
    data = json.loads(run("inspect", pv_file, "--json").stdout)
    assert data["format"] == "torch-zip" and data["container"] == "model_state"
    assert data["dropped_entries"] == ["epoch"] and data["tensors"] == 662
    arch = data["architecture"]
    assert (arch["family"], arch["depth"], arch["pathways"]) == ("slowfast", 50, 2)
    assert (arch["fusion_kernel"], arch["lateral_norm"], arch["channel_ratio"], arch["head_classes"]) == (7, True, 8, 400)
    assert arch["per_pathway"]["slow"]["stem_kernel"] == [1, 7, 7]
    assert arch["per_pathway"]["slow"]["inflate"] == [[0, 0, 0], [0, 0, 0, 0], [1] * 6, [1] * 3]
    assert arch["per_pathway"]["fast"]["stem_kernel"] == [5, 7, 7] and arch["per_pathway"]["fast"]["width"] == 8


def test_convert_errors(tmp_path, pv_file):
    out = tmp_path / "o.safetensors"
    result = run("convert", pv_file, "--arch", "slowfast_r50_8x8", "-o", out, ok=(2,))
    assert "laterals have BN" in result.stderr and not out.exists()
    bad = tmp_path / "bad.safetensors"
    save_file({"encoder.layers.0.weight": torch.zeros(2)}, str(bad))
    result = run("convert", bad, "-o", out, ok=(2,))
    assert "cannot tell the naming scheme" in result.stderr and "Traceback" not in result.output
    pth = tmp_path / "o.pth"
    result = run("convert", pv_file, "--to", "caffe2", "-o", pth, ok=(2,))
    assert "Caffe2 checkpoints are .pkl" in result.stderr and not pth.exists()
