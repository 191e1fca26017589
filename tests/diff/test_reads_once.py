"""diff reads what it compares once: one open per input, each tensor's bytes at most once, and
float64 only in slices (never a float64 copy of a whole large tensor)."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from inflate3d.cli import main
from inflate3d.diff import diff_checkpoints, diff_inflated
from inflate3d.diff.metrics import CHUNK
from inflate3d.inflate import prepare
from inflate3d.io import lazy

BIG = "backbone.slow_path.layer4.0.conv2.conv.weight"  # 512x512x1x3x3: more values than one slice


@pytest.fixture(scope="module")
def files(tmp_path_factory, seeded):
    """A 2D R50, its SlowFast inflation, and that inflation trained a little (two stages), as safetensors."""
    d = tmp_path_factory.mktemp("reads")
    src = seeded(50)
    save_file(src.tensors, str(d / "r50.safetensors"))
    sd = prepare(src, "slowfast_r50_4x16", head="imagenet").state_dict()
    save_file(sd, str(d / "sf.safetensors"))
    g = torch.Generator().manual_seed(0)
    for k in (BIG, "backbone.slow_path.layer3.0.conv1.conv.weight"):
        sd[k] = sd[k] * (1 + 0.01 * torch.randn(sd[k].shape, generator=g))
    save_file(sd, str(d / "trained.safetensors"))
    return d


def _read_once(got, path, keys_read):
    reads = {k: n for (p, k), n in got.items() if p == str(path)}
    header = lazy.read_header(path)[0] if str(path).endswith(".safetensors") else None
    for k, n in reads.items():
        begin, end = header[k]["data_offsets"]
        assert n == end - begin, (k, n, end - begin)  # read exactly once
    assert len(reads) == keys_read(header)


def run(*args, ok=(0, 1)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def test_diff_opens_each_file_once_and_reads_each_tensor_once(files, reads):
    opened, loads, got = reads
    a, b = files / "sf.safetensors", files / "trained.safetensors"
    data = run("diff", a, b, "--json", ok=(1,))
    assert data["differing"] == 2 and data["compared"] == len(load_file(str(a)))
    assert opened == {str(a): 1, str(b): 1} and not loads
    for p in (a, b):
        _read_once(got, p, len)


def test_diff_of_a_pth_reads_it_in_place_once(files, reads, tmp_path):
    """A .pth (mmaction2's container) against the safetensors it was converted from: the torch zip
    is opened once and read tensor by tensor (never loaded whole), each tensor's bytes once."""
    opened, loads, got = reads
    a = files / "sf.safetensors"
    pth = tmp_path / "sf.pth"
    run("convert", a, "--format", "pth", "-o", pth, "--json")
    opened.clear(), loads.clear(), got.clear()
    data = run("diff", pth, a, "--json")
    assert data["equal"] and data["compared"] == len(load_file(str(a)))
    assert opened == {str(a): 1, str(pth): 1} and not loads
    _read_once(got, a, len)
    header = lazy.read_header(a)[0]
    sizes = {k: e - b for k, (b, e) in ((k, v["data_offsets"]) for k, v in header.items())}
    assert {k: n for (p, k), n in got.items() if p == str(pth)} == sizes


@pytest.mark.parametrize("order", ["3d_first", "2d_first"])
def test_diff_inflated_opens_each_file_once_and_reads_each_tensor_once(files, reads, order):
    opened, loads, got = reads
    three, two = files / "trained.safetensors", files / "r50.safetensors"
    data = run("diff", "--inflated", *((three, two) if order == "3d_first" else (two, three)), "--json", ok=(1,))
    assert {g for g, s in data["stages"].items() if s["exact"] < s["tensors"]} == {"slow_layer3", "slow_layer4"}
    assert opened == {str(three): 1, str(two): 1} and not loads
    _read_once(got, three, lambda h: len(data["tensors"]))
    _read_once(got, two, lambda h: len({t["source"] for t in data["tensors"]}))


@pytest.fixture
def float64_sizes(monkeypatch):
    """The size of every float64 tensor made by .to() or .double()."""
    sizes = []
    to, double = torch.Tensor.to, torch.Tensor.double

    def to64(self, *args, **kw):
        out = to(self, *args, **kw)
        if out.dtype == torch.float64 and out is not self:
            sizes.append(out.numel())
        return out

    def double64(self, *args, **kw):
        out = double(self, *args, **kw)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch.Tensor, "to", to64)
    monkeypatch.setattr(torch.Tensor, "double", double64)
    return sizes


def test_float64_only_in_slices(files, float64_sizes):
    assert load_file(str(files / "sf.safetensors"))[BIG].numel() > CHUNK
    r = diff_checkpoints(files / "sf.safetensors", files / "trained.safetensors")
    assert [d.key for d in r.differing][-1] == BIG and max(float64_sizes) <= CHUNK
    float64_sizes.clear()
    r = diff_inflated(files / "trained.safetensors", files / "r50.safetensors")
    big = next(t for t in r.tensors if t.key == BIG)
    assert not big.exact and 0.005 < big.rel_change < 0.05 and max(float64_sizes) <= CHUNK
