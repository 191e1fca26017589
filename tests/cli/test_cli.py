"""The command line as a user meets it: exit codes, one-line errors, JSON, files on disk."""
from __future__ import annotations

import json
import subprocess
import sys

import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from inflate3d.cli import main
from inflate3d.slowfast import build_model


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


def test_help_does_not_import_torch():
    code = "import sys; from inflate3d.cli import main; sys.argv=['inflate3d','--help']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_archs_json():
    data = json.loads(run("archs", "--json").output)
    by_name = {a["name"]: a for a in data["archs"]}
    assert by_name["slowfast_r50_4x16"]["parameters"] == 34_479_288
    assert by_name["slowfast_r50_4x16"]["backbone_parameters"] == 33_557_288
    assert by_name["i3d_r50"]["clip"] == [32, 224, 224]
    assert {f"{f}_r{d}" for f in ("i3d", "slowonly") for d in (18, 34, 50, 101, 152)} <= set(by_name)


def test_inflate_writes_verified_safetensors_with_metadata(tmp_path, r50_file):
    out = tmp_path / "sf.safetensors"
    result = run("inflate", r50_file, "--arch", "slowfast_r50_4x16", "-o", out, "--json")
    data = json.loads(result.stdout)
    assert data["ok"] and data["verification"]["passed"] and data["output"] == str(out)
    assert data["tensors"]["inflated"]["tensors"] == 9 and data["tensors"]["fresh_init"]["tensors"] == 322
    assert sorted(data["unused_2d"]) == ["fc.bias", "fc.weight"]
    assert [c["name"] for c in data["verification"]["checks"]] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["arch"] == "slowfast_r50_4x16" and meta["method"] == "mean" and meta["head"] == "none"
    assert meta["source"] == "resnet50.safetensors" and meta["source_kind"] == "file"
    assert len(meta["source_sha256"]) == 64 and "/" not in json.dumps(meta)
    sd = load_file(str(out))
    assert all(k.startswith("backbone.") for k in sd) and len(sd) == 640
    assert out.stat().st_mode & 0o777 != 0o600
    assert list(tmp_path.iterdir()) == [out]  # no temporary files left


def test_imagenet_head_in_pth_loads_strictly_into_build_model(tmp_path, r18_file):
    out = tmp_path / "i3d.pth"
    run("inflate", r18_file, "--arch", "i3d_r18", "--head", "imagenet", "--format", "pth", "-o", out,
        "--method", "center")
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {"state_dict", "meta"} and ckpt["meta"]["head"] == "imagenet"
    build_model("i3d_r18", num_classes=1000).load_state_dict(ckpt["state_dict"], strict=True)


def test_outputs_are_deterministic_and_never_overwritten_without_force(tmp_path, r18_file):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    run("inflate", r18_file, "--arch", "slowonly_r18", "--head", "7", "-o", a, "--no-verify")
    run("inflate", r18_file, "--arch", "slowonly_r18", "--head", "7", "-o", b, "--no-verify")
    assert a.read_bytes() == b.read_bytes()
    before = a.read_bytes()
    result = run("inflate", r18_file, "--arch", "i3d_r18", "-o", a, ok=(2,))
    assert "already exists; pass --force" in result.stderr and a.read_bytes() == before
    run("inflate", r18_file, "--arch", "i3d_r18", "-o", a, "--force", "--no-verify")
    assert a.read_bytes() != before


def test_bad_input_is_one_line_exit_2_no_traceback_no_output(tmp_path, r18_file):
    out = tmp_path / "o.safetensors"
    cases = [
        (["inflate", tmp_path / "missing.pth", "-o", out], "no such file"),
        (["inflate", r18_file, "--arch", "slowfast_r50_4x16", "-o", out], "is a ResNet-18 but"),
        (["inflate", r18_file, "--arch", "i3d_r99", "-o", out], "unknown architecture"),
        (["inflate", r18_file, "--arch", "i3d_r18", "--head", "many", "-o", out], "expected none | imagenet | N"),
        (["inflate", r18_file, "--arch", "i3d_r18", "-o", r18_file, "--force"], "is also an input"),
        (["inflate", r18_file, "--arch", "i3d_r18", "-o", r18_file / "x.safetensors"], "is a file, not a folder"),
    ]
    for args, message in cases:
        result = run(*args, ok=(2,))
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_dry_run_prints_the_key_map_and_writes_nothing(tmp_path, r18_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = json.loads(run("inflate", r18_file, "--arch", "i3d_r18", "--dry-run", "--json").stdout)
    assert data["dry_run"] and len(data["map"]) == 120
    first = data["map"][0]
    assert first == {"target": "backbone.conv1.conv.weight", "action": "inflated", "source": "conv1.weight",
                     "shape": [64, 3, 5, 7, 7], "pad": 0}
    assert list(tmp_path.iterdir()) == []


def test_default_source_and_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("inflate", "--arch", "slowonly_r18", "--head", "imagenet")
    assert "NOT ImageNet weights" in result.stderr
    out = tmp_path / "checkpoints" / "slowonly_r18_mean_seeded-resnet18-0.safetensors"
    assert out.is_file()
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["source_kind"] == "seeded-init"
    verified = run("verify", out, "--against", "seeded:resnet18:0")
    assert "source sha256 matches" in verified.stdout and "verified" in verified.stdout


def test_verify_fails_on_a_corrupted_checkpoint_and_a_wrong_source(tmp_path, r18_file):
    good = tmp_path / "good.safetensors"
    run("inflate", r18_file, "--arch", "i3d_r18", "--method", "center", "-o", good, "--no-verify")
    run("verify", good, "--against", r18_file)
    sd = load_file(str(good))
    sd["backbone.layer2.1.conv1.conv.weight"] += 0.1
    bad = tmp_path / "bad.safetensors"
    with safe_open(str(good), "pt") as f:
        save_file(sd, str(bad), metadata=f.metadata())
    result = run("verify", bad, "--against", r18_file, "--json", ok=(1,))
    data = json.loads(result.stdout)
    assert not data["ok"] and [c["name"] for c in data["verification"]["checks"] if not c["passed"]] == \
        ["layer2", "layer3", "layer4"]
    other = tmp_path / "other.pth"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in torch.load(r18_file).items()}, other)
    result = run("verify", good, "--against", other, ok=(1,))
    assert "differs from the" in result.stderr and "this is not its source" in result.stderr


def test_verify_strict_load_failure_is_exit_1(tmp_path, r18_file):
    good = tmp_path / "good.safetensors"
    run("inflate", r18_file, "--arch", "i3d_r18", "-o", good, "--no-verify")
    sd = load_file(str(good))
    del sd["backbone.layer1.0.conv1.bn.running_mean"]
    partial = tmp_path / "partial.safetensors"
    save_file(sd, str(partial))
    result = run("verify", partial, "--against", r18_file, "--arch", "i3d_r18", ok=(1,))
    assert "does not load strictly: 1 missing (backbone.layer1.0.conv1.bn.running_mean)" in result.stderr
