"""What is on disk is what was meant: strided views (as ``torch.save`` keeps them in real
checkpoints) in every dtype, written by every writer and converted between every pair of schemes
and formats, read back from the file with the peers' own readers, bit for bit."""
from __future__ import annotations

import io
import pickle
import re

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

from inflate3d.cli import main
from inflate3d.diff.metrics import bit_equal
from inflate3d.inflate.convert import convert
from inflate3d.io.caffe2 import write_blobs
from inflate3d.io.save import write_pth, write_safetensors
from inflate3d.slowfast import build_model

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SCHEMES = ["mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "torchvision3d"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Many tiny tensors: one thread (two spin against each other on a shared machine, 8x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def strided(t: torch.Tensor) -> torch.Tensor:
    """The same values as a non-contiguous view: a 1-D vector as every second element of a wider
    buffer (whose other elements are garbage), a 2-D..5-D tensor as a transposed copy seen through
    the inverse transpose."""
    if t.dim() == 0:
        return t
    if t.dim() == 1:
        buf = torch.full((2 * t.numel() + 1,), 7, dtype=t.dtype)
        buf[1::2] = t
        view = buf[1::2]
    else:
        order = list(range(t.dim()))[::-1]
        view = t.permute(order).contiguous().permute(order)
    assert not view.is_contiguous() or view.storage_offset() or t.numel() < 2
    assert torch.equal(view, t)
    return view


def distinct(shapes: dict, dtype: torch.dtype, seed: int) -> dict[str, torch.Tensor]:
    """A tensor of distinct random values per key (zeros would hide swapped names)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.randint(1, 1000, (), generator=g)
        else:
            out[k] = (torch.randn(shape, generator=g) + 3.0).to(dtype)
    return out


@pytest.mark.parametrize("dtype", DTYPES + [torch.int64])
def test_every_writer_writes_the_values_of_strided_views(tmp_path, dtype):
    g = torch.Generator().manual_seed(0)
    dense = {"vec": torch.randn(33, generator=g), "mat": torch.randn(5, 7, generator=g),
             "k3": torch.randn(3, 4, 5, generator=g), "k4": torch.randn(3, 4, 5, 6, generator=g),
             "k5": torch.randn(4, 3, 3, 5, 5, generator=g), "big": torch.randn(1100, 1000, generator=g),
             "scalar": torch.tensor(2.5)}
    dense = {k: (v * 100).to(dtype) for k, v in dense.items()}
    views = {k: strided(v) for k, v in dense.items()}
    st = tmp_path / "a.safetensors"
    with open(st, "wb") as f:
        write_safetensors(f, [(k, tuple(v.shape), v.dtype) for k, v in views.items()], views.items(), {})
    with safe_open(str(st), "pt") as f:
        assert all(bit_equal(f.get_tensor(k), v) for k, v in dense.items())
    pth = tmp_path / "a.pth"
    with open(pth, "wb") as f:
        write_pth(f, {"state_dict": views})
    back = torch.load(pth, weights_only=True)["state_dict"]
    for k, v in dense.items():  # the values, and no hidden bytes of the wider buffers
        assert bit_equal(back[k], v), k
        assert back[k].untyped_storage().nbytes() == v.numel() * v.element_size(), k
    buf = io.BytesIO()
    write_blobs(buf, views, {})
    blobs = pickle.loads(buf.getvalue(), encoding="latin1")["blobs"]
    for k, v in dense.items():
        assert bit_equal(torch.from_numpy(blobs[k]), v.float() if v.is_floating_point() else v), k


def torchvision_name(native: str) -> str:
    """mmaction2's name of an inflated 2D tensor -> torchvision's (written out here, independently
    of inflate3d's mapping)."""
    k = native.removeprefix("backbone.").replace("cls_head.fc_cls.", "fc.")
    k = k.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")
    return re.sub(r"conv(\d)\.bn\.", r"bn\1.", re.sub(r"conv(\d)\.conv\.", r"conv\1.", k))


def _read_disk(path, fmt: str) -> dict[str, torch.Tensor]:
    """The file's tensors by the peers' own readers (not inflate3d's)."""
    if fmt == "safetensors":
        with safe_open(str(path), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    if fmt == "pkl":
        blobs = pickle.load(open(path, "rb"), encoding="latin1")["blobs"]
        return {k: torch.from_numpy(v) for k, v in blobs.items()}
    obj = torch.load(path, weights_only=True)
    inner = next((obj[k] for k in ("state_dict", "model_state") if isinstance(obj, dict) and k in obj), obj)
    return {k.removeprefix("module."): v for k, v in inner.items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_checkpoints_convert_between_every_scheme_and_format_bit_for_bit(tmp_path, dtype):
    """Each scheme's strided checkpoint (a .pth, as torch.save keeps strides) -> every scheme, in
    safetensors or the target's own container (alternating, so each pair meets both across the
    dtypes); the file read back from disk, mapped back to the source's names, is the source bit for
    bit. float32 runs every pair; float16 and bfloat16 every pair from and to mmaction2."""
    shapes = {k: tuple(v.shape) for k, v in
              build_model("slowonly_r18", base_channels=8, num_classes=5, device="meta").state_dict().items()}
    native = distinct(shapes, dtype, seed=DTYPES.index(dtype))
    for i, src_scheme in enumerate(SCHEMES):
        src = convert(native, source=None, target=src_scheme, origin="n").tensors
        src_views = {k: strided(v) for k, v in src.items()}
        src_path = tmp_path / f"src_{src_scheme}.pth"
        torch.save({"state_dict": src_views}, src_path)  # strides kept in the file
        assert not torch.load(src_path, weights_only=True)["state_dict"][next(iter(src))].is_contiguous()
        for j, dst_scheme in enumerate(SCHEMES):
            if dtype != torch.float32 and "mmaction2" not in (src_scheme, dst_scheme):
                continue
            own = "pkl" if dst_scheme == "caffe2" else "pth"
            fmt = "safetensors" if (i + j + DTYPES.index(dtype)) % 2 else own
            out = tmp_path / f"{src_scheme}_to_{dst_scheme}.{fmt}"
            result = CliRunner().invoke(main, ["convert", str(src_path), "--to", dst_scheme, "-o", str(out)])
            assert result.exit_code == 0, (src_scheme, dst_scheme, fmt, result.output)
            disk = _read_disk(out, fmt)
            back = convert(disk, source=dst_scheme, target=src_scheme, origin="disk").tensors
            c2_float = fmt == "pkl"
            for k, v in src.items():
                if k.endswith("num_batches_tracked") and "caffe2" in (src_scheme, dst_scheme):
                    continue  # Caffe2 has no batch counters
                want = v.float() if c2_float and v.is_floating_point() else v
                assert bit_equal(back[k], want), (src_scheme, dst_scheme, fmt, k)


def test_inflate_from_a_strided_2d_source_copies_every_tensor_exactly(tmp_path, seeded):
    src = seeded(18).tensors
    path = tmp_path / "resnet18_strided.pth"
    torch.save({k: strided(v) for k, v in src.items()}, path)
    out = tmp_path / "i3d.pth"
    result = CliRunner().invoke(main, ["inflate", str(path), "--arch", "i3d_r18", "--head", "imagenet",
                                       "--verify-size", "16", "-o", str(out)])
    assert result.exit_code == 0, result.output
    sd = torch.load(out, weights_only=True)["state_dict"]
    checked = 0
    for k, v in sd.items():
        name = torchvision_name(k)
        if name not in src:
            continue
        w2d = src[name]
        if v.dim() == 5:  # mmaction2's inflation: w2d repeated over T taps, divided by T
            want = w2d.unsqueeze(2).expand_as(v) / v.shape[2]
        else:
            want = w2d
        assert bit_equal(v, want.contiguous()), k
        checked += 1
    assert checked == len(src)
