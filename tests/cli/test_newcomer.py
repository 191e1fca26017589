"""A newcomer's tour (issue 14), run as a user runs it: CliRunner, and subprocesses whose stdout
is a pipe. Each test is one friction point and what the user now gets."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from inflate3d.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


def piped(*args, env=None, cwd=None):
    """The CLI in a subprocess, stdout and stderr pipes (no terminal), as in a script or a log."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("FORCE_COLOR", None) if "FORCE_COLOR" not in (env or {}) else None
    return subprocess.run([sys.executable, "-m", "inflate3d", *map(str, args)], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=300)


def json_keys(obj, path=""):
    """Every key of a JSON document, with where it is."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, path
            if path.endswith("metadata"):
                continue  # the file's own record, as it is
            yield from json_keys(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for v in obj:
            yield from json_keys(v, path)


# -------------------------------------------------------------------------------------- output


def test_piped_dry_run_keeps_every_cell_whole_and_has_no_colour(tmp_path, r18_file):
    p = piped("inflate", r18_file, "--arch", "i3d_r18", "--dry-run", env={"COLUMNS": "40"})
    assert p.returncode == 0, p.stderr
    assert "…" not in p.stdout and "\x1b[" not in p.stdout and "┃" not in p.stdout
    lines = p.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("backbone.")}
    assert len(rows) == 120  # the whole key map, one key per line, whole
    assert rows["backbone.layer4.0.conv2.conv.weight"] == [
        "backbone.layer4.0.conv2.conv.weight", "copied", "layer4.0.conv2.weight", "512x512x1x3x3"]
    assert rows["backbone.layer1.0.conv1.conv.weight"][1:] == ["inflated", "layer1.0.conv1.weight", "64x64x3x3x3"]


def test_colour_only_on_a_terminal_and_never_with_no_color(r18_file):
    args = ("diff", r18_file, r18_file)
    coloured = piped(*args, env={"FORCE_COLOR": "1"})  # as a terminal: green "equal"
    assert coloured.returncode == 0 and re.search(r"\x1b\[[0-9;]*3[0-9]m", coloured.stdout)
    plain = piped(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == 0 and not re.search(r"\x1b\[[0-9;]*3[0-9]m", plain.stdout)
    folded = piped(*args, env={"FORCE_COLOR": "1", "COLUMNS": "50"})
    table = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", folded.stdout).splitlines() if line[:1] in "┏┃│└┡"]
    assert table and max(len(line) for line in table) <= 50 and "…" not in folded.stdout


def test_json_contract_of_every_command(tmp_path, r18_file):
    out = tmp_path / "i3d.safetensors"
    docs = {
        "archs": run("archs", "--json"),
        "inflate": run("inflate", r18_file, "--arch", "i3d_r18", "--method", "center", "-o", out, "--json"),
        "verify": run("verify", out, "--against", r18_file, "--json"),
        "inspect": run("inspect", out, "--json"),
        "convert": run("convert", out, "--to", "torchvision3d", "-o", tmp_path / "tv.safetensors", "--json"),
        "diff": run("diff", out, tmp_path / "tv.safetensors", "--json"),
        "diff --inflated": run("diff", "--inflated", out, r18_file, "--json"),
    }
    for name, result in docs.items():
        data = json.loads(result.stdout)
        assert data["ok"] is True and data["schema"] == 1, name
        spaced = [(k, where) for k, where in json_keys(data) if " " in k]
        assert not spaced, (name, spaced)
    inflated, verified, converted = (json.loads(docs[k].stdout) for k in ("inflate", "verify", "convert"))
    assert inflated["output"] == str(out) and verified["input"] == str(out) and converted["input"] == str(out)
    assert json.loads(docs["inspect"].stdout)["input"] == str(out)
    for check in verified["verification"]["checks"] + converted["checks"]:
        assert set(check) >= {"name", "passed", "detail"} and check["passed"] is True
    assert [c["name"] for c in converted["checks"]] == ["read_back", "strict_load", "round_trip"]
    assert inflated["tensors"]["inflated"]["tensors"] == 11


def test_errors_under_json_are_one_object(tmp_path, r18_file):
    for args, code, message in [
        (["diff", r18_file, r18_file, "--atol", "-1"], 2, "'--atol'"),  # a usage error
        (["inflate", r18_file, "--arch", "i3d_r81"], 2, "did you mean i3d_r18"),
        (["inflate", "--bogus"], 2, "No such option"),
        (["verify", tmp_path / "missing.safetensors", "--against", r18_file], 2, "no such file"),
    ]:
        p = piped(*args, "--json")
        data = json.loads(p.stdout)
        assert p.returncode == code and data["ok"] is False and data["exit_code"] == code, (args, p.stdout)
        assert message in data["error"] and data["schema"] == 1
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


# ------------------------------------------------------------------------------------ mistakes


def test_diff_keys_and_tolerance_mistakes_are_one_line_exit_2(r18_file):
    for args, message in [
        (["--keys", "["], "--keys '[': not a regular expression"),
        (["--keys", "zzz"], "matches none of the keys"),
        (["--atol", "-1"], "-1.0 is not in the range x>=0"),
        (["--rtol", "-0.5"], "is not in the range x>=0"),
    ]:
        result = run("diff", r18_file, r18_file, *args, ok=(2,))
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)


def test_diff_of_a_3d_net_and_its_2d_source(tmp_path, r18_file):
    out = tmp_path / "i3d.safetensors"
    run("inflate", r18_file, "--arch", "i3d_r18", "-o", out, "--no-verify")
    plain = run("diff", out, r18_file, ok=(2,))
    assert f"did you mean `inflate3d diff --inflated {out} {r18_file}`" in plain.stderr
    right = json.loads(run("diff", "--inflated", out, r18_file, "--json").stdout)
    swapped = json.loads(run("diff", "--inflated", r18_file, out, "--json").stdout)
    assert right["exact"] and swapped["exact"] and swapped["stages"] == right["stages"]
    assert swapped["inputs"] == right["inputs"] == {"three_d": str(out), "two_d": str(r18_file)}
    assert "compared that way round" in swapped["notes"][0]


def test_a_2d_net_given_to_convert_inspect_verify(tmp_path, r18_file):
    result = run("convert", r18_file, "-o", tmp_path / "x.safetensors", ok=(2,))
    assert "is a 2D ResNet-18 (torchvision names), not a video checkpoint" in result.stderr
    assert "inflate3d inflate" in result.stderr and not (tmp_path / "x.safetensors").exists()
    shown = run("inspect", r18_file).stdout
    assert "2D ResNet-18" in shown and "torchvision3d" not in shown
    assert json.loads(run("inspect", r18_file, "--json").stdout)["two_d"] == "ResNet-18 (torchvision names)"
    run("inspect", r18_file, "--from", "torchvision")
    wrong = run("inspect", r18_file, "--from", "pyslowfast", ok=(2,))
    assert "--from pyslowfast, but its kernels are 2D" in wrong.stderr
    verify = run("verify", r18_file, "--against", r18_file, ok=(2,))
    assert "is a 2D ResNet-18" in verify.stderr and "--arch" not in verify.stderr


def test_checks_that_need_no_torch_run_before_torch(tmp_path, r18_file):
    existing = tmp_path / "exists.safetensors"
    existing.write_bytes(b"x")
    cases = [
        (["inflate", tmp_path / "missing.pth"], "no such file"),
        (["inflate", r18_file, "--arch", "i3d_r18", "-o", existing], "already exists; pass --force"),
        (["inflate", r18_file, "--arch", "i3d_r18", "-o", tmp_path], "is a directory"),
        (["convert", existing], "give an output path with -o"),
        (["inflate", r18_file, "--arch", "i3d_r81"], "did you mean i3d_r18"),
        (["inflate", r18_file, "--arch", "I3D_R18"], "did you mean i3d_r18?"),
        (["inflate", r18_file, "--arch", "i3d-r18"], "did you mean i3d_r18?"),
        (["convert", existing, "-o", "y.safetensors", "--arch", "slowfast_r5O_8x8"], "did you mean slowfast_r50_8x8"),
        (["inflate", r18_file, "--set", "lateral_norm"], "expected KEY=VALUE"),
        (["inflate", r18_file, "--method", "middle"], "unknown method 'middle'"),
        (["diff", existing, tmp_path / "nope.pth"], "nope.pth: no such file"),
    ]
    code = ("import sys, json\nfrom inflate3d.cli import main\nout = []\n"
            f"for args in {json.dumps([[str(a) for a in args] for args, _ in cases])}:\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        out.append(e.code)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint(json.dumps(out))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [2] * len(cases)
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(cases)
    for (_, message), line in zip(cases, errors):
        assert message in line, (message, line)


def test_output_paths(tmp_path, r18_file):
    adir = tmp_path / "adir"
    adir.mkdir()
    for force in ([], ["-f"]):
        result = run("inflate", r18_file, "--arch", "i3d_r18", "-o", adir, *force, ok=(2,))
        assert "is a directory" in result.stderr and "already exists" not in result.stderr
    nested = tmp_path / "new" / "deeper" / "x.safetensors"
    run("inflate", r18_file, "--arch", "i3d_r18", "-o", nested, "--no-verify", "-q")
    assert nested.is_file()


def test_messages(tmp_path, r18_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asked = run("inflate", "seeded:resnet18:1", "--arch", "i3d_r18", "--dry-run")
    assert "no ImageNet weights" not in asked.stderr
    fallback = run("inflate", "--arch", "i3d_r18", "--dry-run")
    assert "no ImageNet weights in the torch hub cache" in fallback.stderr
    import torchvision

    model_file = tmp_path / "model.pt"
    torch.save(torchvision.models.resnet18(), model_file)
    result = run("inflate", model_file, "--arch", "i3d_r18", "--trust-pickle", "--dry-run", ok=(2,))
    assert "holds a ResNet, not a state dict; save model.state_dict() instead" in result.stderr


def test_spellings_and_short_options(tmp_path, r18_file):
    out = tmp_path / "c.safetensors"
    quiet = run("inflate", r18_file, "--arch", "i3d_r18", "--method", "centre", "-o", out, "-q")
    assert quiet.stdout == "" and out.is_file()
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["method"] == "center"
    run("inflate", r18_file, "--arch", "i3d_r18", "-o", out, "--no-verify", "-f", "-q")
    from inflate3d import __version__

    assert run("-V").stdout.strip() == f"inflate3d, version {__version__}"


def test_set_is_checked_where_the_network_is_built(tmp_path, r18_file):
    wrong = run("inflate", r18_file, "--arch", "i3d_r18", "--set", "lateral_norm=true", "--dry-run", ok=(2,))
    assert "unknown setting 'lateral_norm'" in wrong.stderr
    result = run("inflate", r18_file, "--arch", "i3d_r18", "--set", "zero_init_residual=true", "--dry-run",
                 "--json")
    assert json.loads(result.stdout)["arch_settings"] == "zero_init_residual=True"


# ------------------------------------------------------------------------------ the headline


@pytest.fixture(scope="module")
def into_pytorchvideo(tmp_path_factory, r50_file):
    """ResNet-50 inflated straight into pytorchvideo's slowfast_r50 (8x8), in its container."""
    out = tmp_path_factory.mktemp("pv") / "slowfast_r50.pyth"
    result = run("inflate", r50_file, "--arch", "slowfast_r50_8x8", "--to", "pytorchvideo", "--head", "400",
                 "--format", "pth", "-o", out, "--json")
    return out, json.loads(result.stdout)


def test_inflate_into_pytorchvideo_loads_strictly_into_its_slowfast_r50(into_pytorchvideo, seeded):
    pv_slowfast = pytest.importorskip("pytorchvideo.models.slowfast")
    import inflate3d
    from inflate3d.inflate.convert import convert

    out, data = into_pytorchvideo
    assert data["ok"] and data["verification"]["passed"] and data["scheme"] == "pytorchvideo"
    assert data["arch"] == "slowfast_r50_8x8" and data["arch_settings"] == "slow_pathway.lateral_norm=True"
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["inflate3d"]["arch_settings"] == "slow_pathway.lateral_norm=True"
    pv = pv_slowfast.create_slowfast()  # pytorchvideo's own slowfast_r50
    pv.load_state_dict(ckpt["model_state"], strict=True)
    # every tensor is the native inflation's, renamed (and the head's columns put in pytorchvideo's order)
    native = inflate3d.inflate(seeded(50).tensors, "slowfast_r50_8x8", head=400,
                               settings={"slow_pathway": {"lateral_norm": True}}).state_dict
    expected = convert(native, source=None, target="pytorchvideo", origin="native").tensors
    assert list(ckpt["model_state"]) == list(expected)
    assert all(torch.equal(ckpt["model_state"][k], v) for k, v in expected.items())


def test_the_pytorchvideo_file_verifies_inspects_and_converts_with_its_settings(tmp_path, into_pytorchvideo, r50_file):
    out, _ = into_pytorchvideo
    verified = json.loads(run("verify", out, "--against", r50_file, "--json").stdout)
    assert verified["ok"] and verified["arch_settings"] == "slow_pathway.lateral_norm=True"
    assert verified["scheme"] == "pytorchvideo"
    shown = run("inspect", out).stdout
    assert "head columns are [slow, fast]" in shown and "reordered from" not in shown
    recorded = json.loads(run("convert", out, "--arch", "slowfast_r50_8x8", "--dry-run", "--json").stdout)
    assert recorded["arch_settings"] == "slow_pathway.lateral_norm=True"  # from the file's own record
    bare = tmp_path / "bare.pyth"  # the same weights without inflate3d's record
    torch.save({"model_state": torch.load(out, weights_only=True)["model_state"]}, bare)
    refused = run("convert", bare, "--arch", "slowfast_r50_8x8", "-o", tmp_path / "a.safetensors", ok=(2,))
    assert "slow_pathway.lateral_norm=true" in refused.stderr
    back = tmp_path / "mm.safetensors"
    data = json.loads(run("convert", out, "--arch", "slowfast_r50_8x8", "--set", "slow_pathway.lateral_norm=true",
                          "-o", back, "--json").stdout)
    assert data["ok"] and data["arch_settings"] == "slow_pathway.lateral_norm=True"
    with safe_open(str(back), "pt") as f:
        assert f.metadata()["arch_settings"] == "slow_pathway.lateral_norm=True"


def test_inflate_into_pyslowfast_has_pyslowfast_own_names_and_shapes(tmp_path, r50_file, pyslowfast_reference):
    out = tmp_path / "sf.pth"
    run("inflate", r50_file, "--arch", "slowfast_r50_4x16", "--to", "pyslowfast", "--head", "400",
        "--format", "pth", "-o", out, "--no-verify")
    ckpt = torch.load(out, weights_only=True)
    assert set(ckpt) == {"model_state", "epoch", "inflate3d"}
    expected = {k: tuple(s) for k, s in pyslowfast_reference["SLOWFAST_4x16_R50"]["keys"]}
    assert {k: tuple(v.shape) for k, v in ckpt["model_state"].items()} == expected
