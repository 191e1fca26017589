"""``inflate3d inflate SRC --into MODULE:FACTORY``: the model's own names on disk, proven from the
file, one-line refusals that write nothing."""
from __future__ import annotations

import json

import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file

from inflate3d.cli import main

MC3 = "torchvision.models.video:mc3_18"


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


def test_into_writes_the_models_own_state_dict_proven(tmp_path, r18_file, seeded):
    from torchvision.models.video import mc3_18

    out = tmp_path / "mc3.safetensors"
    res = run("inflate", r18_file, "--into", MC3, "--kwargs", '{"num_classes": 1000}', "--method", "center",
              "-o", out, "--json")
    data = json.loads(res.stdout)
    assert data["ok"] and data["summary"]["untouched"]["tensors"] == 0 and data["unused_2d"] == []
    assert data["summary"]["inflated"]["tensors"] == 5  # the 3x7x7 stem and layer1's four 3x3x3 convs
    proof = data["proof"]
    assert len(proof["layers"]) == 20 and all(c["passed"] for c in proof["layers"])
    assert not proof["whole_model"]["applicable"]  # mc3 has no max pool after its stem
    written = load_file(out)
    assert list(written) == list(mc3_18(num_classes=1000).state_dict())  # its own names, its order
    src = seeded(18).tensors
    assert torch.equal(written["fc.weight"], src["fc.weight"])
    assert torch.equal(written["layer2.0.conv1.0.weight"][:, :, 0], src["layer2.0.conv1.weight"])
    assert torch.equal(written["stem.0.weight"][:, :, 1], src["conv1.weight"]) and not written["stem.0.weight"][:, :, 0].any()
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["into"] == MC3 and meta["method"] == "center" and meta["kwargs"] == '{"num_classes": 1000}'
    again = run("inflate", r18_file, "--into", MC3, "-o", out, ok=(2,))
    assert "already exists" in again.stderr


def test_into_refusals_are_one_line_exit_2_and_write_nothing(tmp_path, r18_file, r50_file):
    out = tmp_path / "x.safetensors"
    cases = [
        (["--into", "no_colon"], "expected MODULE:FACTORY"),
        (["--into", "no_such_module_17:build"], "cannot import no_such_module_17"),
        (["--into", MC3, "--kwargs", "[1]"], "expected a JSON object"),
        (["--into", MC3, "--arch", "i3d_r18"], "--arch apply to named architectures"),
        (["--into", MC3, "--seed", "0"], "--seed apply to named architectures"),
        (["--hint", "a=b"], "need --into"),
    ]
    for extra, message in cases:
        res = run("inflate", r18_file, *extra, "-o", out, ok=(2,))
        assert message in res.output, (extra, res.output)
    res = run("inflate", r50_file, "--into", "torchvision.models.video:r3d_18", "-o", out, ok=(2,))
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.output
    assert ("does not correspond to resnet50.safetensors: layer1.0.conv1.0 (conv 64->64 3x3x3) is the first "
            "layer that does not match: it stands where layer1.0.conv1 (conv 64->64 1x1) should be but has a "
            "3x3 spatial kernel, not 1x1") in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_into_dry_run_prints_the_tensor_map(tmp_path, r18_file):
    res = run("inflate", r18_file, "--into", MC3, "--dry-run", "--json")
    data = json.loads(res.stdout)
    by_key = {t["key"]: t for t in data["tensors"]}
    assert by_key["layer3.0.downsample.0.weight"]["source"] == "layer3.0.downsample.0.weight"
    assert by_key["fc.weight"]["action"] == "untouched"  # 400 classes
    assert list(tmp_path.iterdir()) == []


def test_into_pth_is_a_plain_state_dict_in_the_models_names(tmp_path, r18_file, seeded):
    out = tmp_path / "mc3.pth"
    res = run("inflate", r18_file, "--into", MC3, "--format", "pth", "--no-verify", "-o", out)
    assert "not verified: --no-verify" in res.stdout and "Per-layer proof" not in res.stdout
    state = torch.load(out, weights_only=True)
    assert "layer4.1.conv2.1.running_var" in state and "fc.weight" in state
    src = seeded(18).tensors
    assert torch.equal(state["layer4.1.conv2.1.running_var"], src["layer4.1.bn2.running_var"])
    w = state["stem.0.weight"]  # mean (the default): w / 3 on each of the 3 taps
    assert torch.equal(w, src["conv1.weight"].unsqueeze(2).expand_as(w) / 3)
