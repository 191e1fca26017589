"""Video Swin through the command line: inspect, verify (--frames), convert to torchvision and back,
diff across schemes and against the 2D source, and inflate's refusal of a mismatched 2D Swin."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from inflate3d.cli import main
from inflate3d.io.safetensors_header import read_header
from inflate3d.slowfast.archs import get_arch
from inflate3d.swin import family

from swin_models import OVERRIDES, microsoft_form, timm_swin


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("swincli")
    net = timm_swin()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, d / "timm.safetensors")
    torch.save({"model": microsoft_form(net)}, d / "microsoft.pth")
    inf = family.prepare(str(d / "timm.safetensors"), get_arch("swin3d_t"), head="imagenet", **OVERRIDES)
    save_file(inf.state_dict(), d / "video.safetensors", metadata=inf.metadata())
    return d


def test_inspect_names_the_arch_and_the_exact_lengths(files):
    data = json.loads(run("inspect", files / "video.safetensors", "--json").stdout)
    arch = data["architecture"]
    assert data["scheme"] == "mmaction2" and arch["matches"].startswith("swin3d_t with")
    assert arch["window_size"] == "8x4x4" and arch["head_classes"] == 10
    assert arch["exact_clip_lengths"].startswith("2, 4, 6, 8, 10, 12, 14, 16, 32, 48")
    for command in (["inspect"], ["convert", "-o", files / "x.safetensors"]):  # --set was ignored: now refused
        result = run(*command[:1], files / "video.safetensors", *command[1:], "--set", "window_size=4", ok=(2,))
        assert "--set window_size: a Swin's settings all follow from its weights; the weights say " \
            "window_size=(8, 4, 4)" in result.output


def test_verify_warns_at_T20_and_passes_at_an_exact_length(files):
    result = run("verify", files / "video.safetensors", "--against", files / "timm.safetensors", "--frames", "20",
                 "--json")
    data = json.loads(result.stdout)
    assert data["ok"] and data["verification"]["passed"]
    assert "T=20" in data["verification"]["warnings"][0]
    assert [c["frames"]["length"] for c in data["verification"]["checks"][:-1]] == [8] * 5  # T=16


def test_convert_to_torchvision_and_back_is_bit_exact(files, tmp_path):
    tv, back = tmp_path / "tv.safetensors", tmp_path / "mm.safetensors"
    data = json.loads(run("convert", files / "video.safetensors", "--to", "torchvision", "-o", tv, "--json").stdout)
    assert data["target_scheme"] == "torchvision" and any("bit for bit" in c["detail"] for c in data["checks"])
    run("convert", tv, "-o", back)
    assert json.loads(run("diff", back, files / "video.safetensors", "--json").stdout)["equal"]
    cross = json.loads(run("diff", tv, files / "video.safetensors", "--json").stdout)
    assert cross["equal"] and cross["schemes"] == {"a": "torchvision", "b": "mmaction2"}


def test_diff_inflated_sees_the_inflation_and_what_moved(files, tmp_path):
    data = json.loads(run("diff", "--inflated", files / "video.safetensors", files / "timm.safetensors",
                          "--json").stdout)
    assert data["exact"] and set(data["stages"]) == {"patch_embed", "layers.0", "layers.1", "layers.2", "norm", "head"}
    from safetensors.torch import load_file

    state = load_file(files / "video.safetensors")
    key = "backbone.layers.1.blocks.0.attn.relative_position_bias_table"
    state[key] = state[key] * 1.02
    save_file(state, tmp_path / "moved.safetensors")
    moved = json.loads(run("diff", "--inflated", tmp_path / "moved.safetensors", files / "timm.safetensors", "--json",
                           ok=(1,)).stdout)
    assert [g for g, s in moved["stages"].items() if s["exact"] != s["tensors"]] == ["layers.1"]
    assert moved["stages"]["layers.1"]["max_rel_change"] == pytest.approx(0.02, rel=1e-3)


def test_diff_inflated_reads_the_video_file_one_tensor_at_a_time(files, reads):
    """The Video Swin is opened once and read tensor by tensor, never loaded whole, each tensor's
    bytes once; the 2D source, whose names may need its tensors, is loaded."""
    video = files / "video.safetensors"
    opened, loads, got = reads
    data = json.loads(run("diff", "--inflated", video, files / "microsoft.pth", "--json").stdout)
    assert data["exact"]
    assert opened[str(video)] == 1 and not loads[str(video)]
    header = read_header(video)[0]
    sizes = {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items()}
    read = {k: n for (p, k), n in got.items() if p == str(video)}
    assert set(read) == {t["key"] for t in data["tensors"]}
    assert all(n == sizes[k] for k, n in read.items())  # each tensor's bytes, once


def test_diff_inflated_of_no_tensor_is_an_error_not_exactly_the_inflation(files):
    """A key filter that selects nothing compares nothing: an error, not "exactly the inflation"."""
    result = run("diff", "--inflated", files / "video.safetensors", files / "timm.safetensors", "--keys", "nomatch",
                 ok=(2,))
    assert "key pattern 'nomatch' matches no tensor" in result.output and "Traceback" not in result.output


def test_inflate_refuses_a_2d_swin_of_another_size(files, tmp_path):
    result = run("inflate", files / "timm.safetensors", "--arch", "swin3d_t", "-o", tmp_path / "x.safetensors", ok=(2,))
    assert "embed_dims 32" in result.output and "swin3d_t needs 96" in result.output
    assert not (tmp_path / "x.safetensors").exists()


def test_2d_swins_are_recognised_compared_and_not_converted(files, tmp_path):
    data = json.loads(run("inspect", files / "timm.safetensors", "--json").stdout)
    assert data["scheme"] == "swin2d-timm" and data["architecture"]["window_size"] == "4x4"
    assert data["architecture"]["depths"] == [2, 2, 2] and "no named Video Swin" in data["architecture"]["inflates_into"]
    same = json.loads(run("diff", files / "timm.safetensors", files / "microsoft.pth", "--json").stdout)
    assert same["equal"] and same["schemes"] == {"a": "swin2d-timm", "b": "swin2d-microsoft"} and same["compared"] == 92
    result = run("convert", files / "timm.safetensors", "-o", tmp_path / "x.safetensors", ok=(2,))
    assert "2D timm Swin: use `inflate3d inflate`" in result.output
