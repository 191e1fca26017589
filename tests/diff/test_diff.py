"""diff: exit codes and figures, cross-scheme equality, and the inverse of the inflation."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from inflate3d.cli import main
from inflate3d.diff import compare, diff_checkpoints, diff_inflated
from inflate3d.inflate import prepare


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def sf_pair(tmp_path_factory, seeded):
    """An inflated SlowFast (mmaction2 names) and its 2D source, as safetensors files."""
    d = tmp_path_factory.mktemp("diff")
    src = seeded(50)
    save_file(src.tensors, str(d / "r50.safetensors"))
    for method in ("mean", "center"):
        save_file(prepare(src, "slowfast_r50_4x16", method=method, head="imagenet").state_dict(),
                  str(d / f"sf_{method}.safetensors"))
    return d


def test_compare_figures():
    a = torch.tensor([1.0, 2.0, -4.0])
    d = compare("w", a, torch.tensor([1.0, 2.5, -4.0]))
    assert (d.max_abs, d.max_rel, d.equal) == (0.5, 0.125, False)
    assert d.cosine == pytest.approx(float(a @ torch.tensor([1.0, 2.5, -4.0])) / (a.norm() * torch.tensor([1.0, 2.5, -4.0]).norm()))
    assert compare("w", a, a + 1e-3, atol=2e-3).equal and not compare("w", a, a + 1e-3, atol=5e-4).equal


def test_identical_is_exit_0_and_a_perturbed_tensor_exit_1(tmp_path, sf_pair):
    a = sf_pair / "sf_mean.safetensors"
    assert json.loads(run("diff", a, a, "--json").stdout)["equal"]
    sd = load_file(str(a))
    key = "backbone.slow_path.layer2.1.conv2.conv.weight"
    sd[key][0, 0, 0, 0, 0] += 0.25
    b = tmp_path / "b.safetensors"
    save_file(sd, str(b))
    data = json.loads(run("diff", a, b, "--json", "--top", "2", ok=(1,)).stdout)
    assert not data["equal"] and data["differing"] == 1
    worst = data["worst"][0]
    assert worst["key"] == key and worst["max_abs"] == pytest.approx(0.25)
    scale = max(load_file(str(a))[key].abs().max().item(), sd[key].abs().max().item())
    assert worst["max_rel"] == pytest.approx(0.25 / scale)
    assert data["groups"]["slow_layer2"]["differing"] == 1 and data["groups"]["slow_layer3"]["differing"] == 0
    assert json.loads(run("diff", a, b, "--json", "--atol", "0.3").stdout)["equal"]
    assert json.loads(run("diff", a, b, "--json", "--keys", "layer3").stdout)["equal"]


def test_missing_extra_shape_and_dtype_mismatches(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file({"x": torch.zeros(2), "y": torch.zeros(3), "z": torch.zeros(2), "only_a": torch.zeros(1)}, str(a))
    save_file({"x": torch.zeros(2), "y": torch.zeros(4), "z": torch.zeros(2, dtype=torch.float16),
               "only_b": torch.zeros(1)}, str(b))
    r = diff_checkpoints(a, b)
    assert (r.only_a, r.only_b) == (["only_a"], ["only_b"])
    assert r.shape_mismatch == [("y", (3,), (4,))] and r.dtype_mismatch == [("z", "float32", "float16")]
    assert not r.equal
    result = run("diff", a, b, ok=(1,))
    assert "only in A" in result.stdout and "differ" in result.stdout


def test_bad_input_is_exit_2(tmp_path):
    result = run("diff", tmp_path / "nope.safetensors", tmp_path / "nope2.safetensors", ok=(2,))
    assert "no such file" in result.stderr and "Traceback" not in result.output


def test_a_conversion_diffs_equal_across_schemes(tmp_path, sf_pair):
    pv = tmp_path / "pv.pth"
    native = sf_pair / "sf_center.safetensors"
    sd = load_file(str(native))  # give it lateral BN so that it is expressible in pytorchvideo
    run("convert", native, "--to", "pyslowfast", "-o", tmp_path / "x.safetensors", ok=(2,))  # no lateral BN
    from inflate3d.slowfast import build_model
    ln = build_model("slowfast_r50_4x16", num_classes=1000, slow_pathway={"lateral_norm": True})
    full = {**ln.state_dict(), **sd}
    native_ln = tmp_path / "native_ln.safetensors"
    save_file(full, str(native_ln))
    run("convert", native_ln, "--to", "pytorchvideo", "--format", "pth", "-o", pv)
    data = json.loads(run("diff", native_ln, pv, "--json").stdout)
    assert data["equal"] and data["schemes"] == {"a": "mmaction2", "b": "pytorchvideo"} and data["compared"] == 662
    sd_pv = torch.load(pv, weights_only=True)["model_state"]
    sd_pv["blocks.6.proj.weight"] = sd_pv["blocks.6.proj.weight"].flip(1)  # wrong column order
    torch.save({"model_state": sd_pv}, pv)
    data = json.loads(run("diff", native_ln, pv, "--json", ok=(1,)).stdout)
    assert [w["key"] for w in data["worst"] if not w["equal"]] == ["cls_head.fc_cls.weight"]


@pytest.mark.parametrize("method", ["mean", "center"])
def test_inflated_checkpoint_is_exactly_its_inflation(sf_pair, method):
    r = diff_inflated(sf_pair / f"sf_{method}.safetensors", sf_pair / "r50.safetensors")
    assert r.exact and r.arch == "slowfast_r50_4x16"
    assert {s for st in r.stages.values() for s in st.methods} == {method, "copy"}
    assert all(t.pad_zero for t in r.tensors if t.pad_zero is not None)
    assert sum(t.pad_zero is not None for t in r.tensors) == 9  # 8 lateral inputs + the head's fast columns
    assert any("fast_path" in k for k in r.no_source) and any("_lateral" in k for k in r.no_source)


def test_training_one_stage_is_reported_on_that_stage_only(tmp_path, sf_pair):
    sd = load_file(str(sf_pair / "sf_mean.safetensors"))
    g = torch.Generator().manual_seed(0)
    for k in sd:
        if k.startswith("backbone.slow_path.layer3.") and k.endswith("conv.weight"):
            sd[k] = sd[k] * (1 + 0.01 * torch.randn(sd[k].shape, generator=g))
    sd["backbone.slow_path.layer3.0.conv1.conv.weight"][:, 512:] += 0.01  # its lateral inputs (512..639) moved too
    trained = tmp_path / "trained.safetensors"
    save_file(sd, str(trained))
    data = json.loads(run("diff", "--inflated", trained, sf_pair / "r50.safetensors", "--json", ok=(1,)).stdout)
    moved = {g: s for g, s in data["stages"].items() if s["exact"] < s["tensors"]}
    assert list(moved) == ["slow_layer3"]
    assert 0.005 < moved["slow_layer3"]["max_rel_change"] < 0.05 and moved["slow_layer3"]["padding_moved"] == 1


def test_bit_equal_sees_nan_payloads_and_dtypes():
    from inflate3d.diff import bit_equal

    a = torch.tensor([1.0, float("nan")])
    assert bit_equal(a, a.clone()) and not torch.equal(a, a.clone())
    assert not bit_equal(a, a.to(torch.float64)) and not bit_equal(a, torch.tensor([1.0, 2.0]))
    assert bit_equal(torch.tensor([1, 2]), torch.tensor([1, 2]))
