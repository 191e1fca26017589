"""The torch-free structure reader (``io.structure``) against the loader (``io.load``): the same
names, shapes, dtypes, container, prefix, metadata and extras for every format, and the files it
must leave to torch's loader or refuse."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inflate3d.errors import Inflate3dError
from inflate3d.io.lazy import TensorFile
from inflate3d.io.load import load_checkpoint
from inflate3d.io.structure import NeedsTorch, TensorMeta, read_structure


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"conv1.weight": torch.randn(8, 3, 3, 7, 7, generator=g),
            "bn1.weight": torch.rand(8, generator=g, dtype=torch.float64),
            "bn1.running_var": torch.rand(8, generator=g).half(),
            "bn1.num_batches_tracked": torch.tensor(5),
            "fc.weight": torch.randn(4, 8, generator=g).bfloat16(),
            "mask": torch.ones(3, dtype=torch.bool),
            "strided": torch.arange(24.0).reshape(4, 6)[:, ::2],  # a view with its own strides
            "empty": torch.zeros(0, 5)}


def _same(path, **kw):
    a, b = read_structure(path, **kw), load_checkpoint(path, **kw)
    assert list(a.tensors) == list(b.tensors)
    for k, t in b.tensors.items():
        assert a.tensors[k] == TensorMeta(tuple(t.shape), str(t.dtype).removeprefix("torch.")), k
    assert (a.format, a.container, a.prefix, a.metadata, a.dropped, a.extras, a.config) == \
        (b.format, b.container, b.prefix, b.metadata, b.dropped, b.extras, b.config)
    return a


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model_state", "module", "meta"])
def test_torch_zip_structure_equals_the_loader(tmp_path, wrap):
    sd = _state()
    obj = {"plain": sd, "state_dict": {"state_dict": sd, "meta": {"arch": "x", "n": 3}},
           "model_state": {"model_state": sd, "epoch": 7, "cfg": "MODEL:\n  ARCH: slowfast\n"},
           "module": {f"module.{k}": v for k, v in sd.items()},
           "meta": {"state_dict": torch.nn.Linear(2, 3).state_dict(), "meta": {}, "optimizer": {"lr": 0.1}}}[wrap]
    path = tmp_path / "x.pth"
    torch.save(obj, path)
    c = _same(path)
    assert c.format == "torch-zip"


def test_parameters_in_a_module_state_dict_and_their_metadata(tmp_path):
    """nn.Module.state_dict() is an OrderedDict with ``_metadata`` (a BUILD): read, and dropped."""
    path = tmp_path / "m.pth"
    torch.save(torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.BatchNorm3d(4)).state_dict(), path)
    assert list(_same(path).tensors) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                         "1.running_var", "1.num_batches_tracked"]


def test_safetensors_and_huggingface_folder(tmp_path):
    sd = {k: v.contiguous() for k, v in _state().items()}
    save_file(sd, str(tmp_path / "a.safetensors"), metadata={"arch": "i3d_r50"})
    _same(tmp_path / "a.safetensors")
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file(sd, str(folder / "model.safetensors"))
    (folder / "config.json").write_text('{"model_type": "x"}')
    c = _same(folder)
    assert c.container == "huggingface folder" and "hf_config" in c.metadata


def test_caffe2_blobs(tmp_path):
    path = tmp_path / "c2.pkl"
    blobs = {"conv1_w": np.ones((4, 3, 1, 7, 7), np.float32), "res_conv1_bn_s": np.ones(4, np.float64),
             "pred_b": np.zeros(3, np.float16), "it": np.array([5], np.int64)}
    path.write_bytes(pickle.dumps({"blobs": blobs, "inflate3d": {"arch": "slowonly_r50"}}, protocol=2))
    c = _same(path)
    assert c.format == "caffe2-pickle" and c.metadata == {"arch": "slowonly_r50"}


def test_a_legacy_pickle_needs_torch(tmp_path):
    path = tmp_path / "old.pth"
    torch.save(_state(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(NeedsTorch):
        read_structure(path)


def test_a_pickle_that_runs_code_is_left_to_the_loader_which_refuses_it(tmp_path):
    """The structure reader resolves no global outside a state dict's few; the loader then names
    every global and runs nothing."""
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "x": Evil()}, path)
    with pytest.raises(NeedsTorch, match="posix.system"):
        read_structure(path)
    with pytest.raises(Inflate3dError, match="refused: unpickling would call posix.system"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def _rewrite_member(path, name_end: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info, payload in items:
            z.writestr(info, data if info.filename.endswith(name_end) else payload)


def test_a_storage_shorter_than_its_tensor_is_refused(tmp_path):
    path = tmp_path / "short.pth"
    torch.save({"w": torch.ones(1000)}, path)
    _rewrite_member(path, "data/0", b"\0" * 40)
    with pytest.raises(Inflate3dError, match="shorter than the file says"):
        read_structure(path)


def test_a_view_past_its_storage_is_refused(tmp_path):
    """The extent check, without reading the storage: a (2**20, 2**20) zero-stride view of one value."""
    path = tmp_path / "view.pth"
    torch.save({"w": torch.ones(1)}, path)
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("data.pkl"))
        data = z.read(name)
    # the pickle's size tuple (1,) and stride (1,) become (2**20,) and (2,): 2**20 values from 1
    patched = data.replace(b"K\x01\x85", b"J\x00\x00\x10\x00\x85", 1)
    patched = patched.replace(b"K\x01\x85", b"K\x02\x85", 1)
    assert patched != data
    _rewrite_member(path, "data.pkl", patched)
    with pytest.raises(Inflate3dError, match="claims 1,048,576 values"):
        read_structure(path)



@pytest.mark.parametrize("size,stride", [((-1,), (1,)), ((-2, -2), (1, 1)), ((0, 2**70), (1, 1)),
                                         ((0, 2**63 - 1, 2**63 - 1), (1, 1, 1)), ((10**5000,), (1,)),
                                         ((2,), (10**5000,))])
def test_sizes_that_no_tensor_can_have_are_refused(tmp_path, size, stride):
    """Negative sizes, and sizes past int64 beside a 0 (no values), passed the extent check: inspect
    described the file, and diff's lazy reader failed on it with an internal error; a 5,000-digit
    size or stride could not even be printed in the refusal."""
    import pickletools

    path = tmp_path / "size.pth"
    torch.save({"w": torch.ones(1)}, path)
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = [pickletools.optimize(pickle.dumps(t, 2))[2:-1] for t in (size, stride)]  # no memo PUTs
    patched = data.replace(b"K\x01\x85", ops[0], 1).replace(b"K\x01\x85", ops[1], 1)
    assert patched.count(ops[0]) and patched.count(ops[1])
    _rewrite_member(path, "data.pkl", patched)
    from inflate3d.inflate.describe import read_for_inspection

    for read in (read_for_inspection, TensorFile, load_checkpoint):  # inspect's, diff's, the loader
        with pytest.raises(Inflate3dError) as e:
            read(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    if b"\x8b" in patched:  # a 5,000-digit int is a LONG4, which torch's loader does not read: neither does this
        with pytest.raises(NeedsTorch):
            read_structure(path)
        assert "opcode LONG4" in str(e.value)
    else:
        with pytest.raises(Inflate3dError, match="which no tensor can have|claims 2 values"):
            read_structure(path)

@pytest.mark.parametrize("payload", [
    b"}" + b")" + b"\x85" * 200_000 + b"K\x01s.",  # {deep tuple: 1}: a key nested 200,000 deep
    b"(" + b")" + b"\x85" * 200_000 + b"K\x01d.",  # the same through DICT
    b"\x8f(" + b")" + b"\x85" * 200_000 + b"\x90.",  # a set of a deep tuple
    # OrderedDict([(deep tuple, 1)]) through REDUCE, INST and OBJ: the pairs are not hashed either
    b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93]" + b")" + b"\x85" * 200_000 + b"K\x01\x86a\x85R.",
    b"(]" + b")" + b"\x85" * 200_000 + b"K\x01\x86aicollections\nOrderedDict\n.",
    b"(\x8c\x0bcollections\x8c\x0bOrderedDict\x93]" + b")" + b"\x85" * 200_000 + b"K\x01\x86ao.",
])
def test_deep_keys_are_not_hashed(tmp_path, payload):
    """A key nested 200,000 deep crashed CPython when hashed: the reader hashes only strings and
    ints, and leaves the file to the loader (whose scan refuses it before unpickling)."""
    path = tmp_path / "deep.pth"
    torch.save({"w": torch.ones(1)}, path)
    _rewrite_member(path, "data.pkl", b"\x80\x04" + payload)
    with pytest.raises(NeedsTorch):
        read_structure(path)
    with pytest.raises(Inflate3dError, match="nested more than"):
        load_checkpoint(path)


def test_a_size_shared_by_every_tensor_is_not_checked_once_per_tensor(tmp_path):
    """One 65-long size tuple in the memo, used by 2,000 tensors: checking each tensor's dimensions
    costs 2,000 x 65 (at 20,000 x 20,000, a 1.3 MB file took minutes). Sizes beyond 64 dimensions,
    which no checkpoint has, go to torch's loader and its scan."""
    import collections

    import torch._utils

    class Storage:
        pass

    storage, shape = Storage(), (1,) * 65

    class Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (storage, 0, shape, shape, False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 1) if obj is storage else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(collections.OrderedDict((f"w{i}", Tensor()) for i in range(2000)))
    data = buf.getvalue()
    assert len(data) < 2000 * 65  # the size tuple is pickled once, then fetched from the memo
    path = tmp_path / "shared.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/data/0", b"\0" * 4)
        z.writestr("archive/version", "3\n")
    with pytest.raises(NeedsTorch, match="at most 64 ints"):
        read_structure(path)


def test_deep_values_are_built_without_recursion(tmp_path):
    """Depth alone is harmless to the stack machine: a metadata value nested 200,000 deep is read
    (and printed cut, never recursed into)."""
    path = tmp_path / "deep.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"x": "MARKERVALUE"}}, path)
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    deep = b")" + b"\x85" * 200_000
    patched = data.replace(b"X\x0b\x00\x00\x00MARKERVALUE", deep, 1)  # meta's value -> a deep tuple
    assert patched != data
    _rewrite_member(path, "data.pkl", patched)
    c = read_structure(path)
    assert list(c.tensors) == ["w"] and len(c.metadata["x"]) <= 2**20 + 100



def _shared_twice(levels: int) -> bytes:
    """[L0, ..., Ln] with L(i) = [L(i-1), L(i-1)] through the memo (BINPUT/BINGET 190+, clear of
    torch's own): a few hundred bytes that ``str`` would print as 2**levels items."""
    put, get = (lambda i: b"q" + bytes([190 + i])), (lambda i: b"h" + bytes([190 + i]))
    data = b"](]" + put(0)
    for i in range(1, levels + 1):
        data += b"](" + get(i - 1) + get(i - 1) + b"e" + put(i)  # APPENDS: torch's unpickler has no LIST
    return data + b"e"


def test_a_value_shared_exponentially_is_not_printed_for_ever(tmp_path):
    """A metadata value whose lists each hold the one before twice, 60 levels deep, hung inspect,
    convert and inflate (``str`` builds 2**60 items before any cut): the structure reader says it
    is too large to print, and the loader's scan refuses what it unfolds to, quickly."""
    path = tmp_path / "shared.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"x": "MARKERVALUE"}}, path)
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    patched = data.replace(b"X\x0b\x00\x00\x00MARKERVALUE", _shared_twice(60), 1)
    assert patched != data
    _rewrite_member(path, "data.pkl", patched)
    code = ("import sys; from inflate3d.io.structure import read_structure; from inflate3d.io.load import "
            "load_checkpoint; p = sys.argv[1]; print(read_structure(p).metadata); load_checkpoint(p)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "{'x': '<a list too large to print>'}", (proc.stdout[:500], proc.stderr[-500:])
    assert "Inflate3dError" in proc.stderr and "unfold to more than" in proc.stderr, proc.stderr[-500:]

def test_reading_the_structure_does_not_import_torch(tmp_path):
    sd = {k: v.contiguous() for k, v in _state().items()}
    torch.save({"state_dict": sd}, tmp_path / "a.pth")
    save_file(sd, str(tmp_path / "a.safetensors"))
    code = ("import sys\nfrom inflate3d.io.structure import read_structure\n"
            f"for f in ('a.pth', 'a.safetensors'):\n    c = read_structure({str(tmp_path)!r} + '/' + f)\n"
            "    assert len(c.tensors) == 8, c\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_torch_zip_is_read_lazily_tensor_by_tensor_bit_for_bit(tmp_path):
    """``TensorFile`` reads a torch zip in place (diff holds one tensor of each file, not the file):
    every tensor equals the loader's, bit for bit, strided views and empty tensors included."""
    from inflate3d.io.lazy import TensorFile

    sd = _state(3)
    path = tmp_path / "m.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    want = load_checkpoint(path).tensors
    with TensorFile(path) as tf:
        assert tf._zip is not None and tf._tensors is None  # in place, not loaded whole
        assert tf.keys() == list(want) and tf.container == "state_dict"
        for k, t in want.items():
            got = tf.get(k)
            assert got.dtype == t.dtype and got.shape == t.shape and tf.shape(k) == tuple(t.shape), k
            assert torch.equal(got.view(torch.uint8) if got.dtype == torch.bool else got, t), k
            assert tf.dtype(k) == t.dtype


def _flip_stored_byte(path, member_end: str, at: int) -> None:
    """Flip one byte of a stored member's data in place (its CRC-32 in the zip stays the old one)."""
    import struct

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_end))
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(info.header_offset + 30 + name_len + extra_len + at)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x10]))


@pytest.mark.parametrize("key, flipped_at", [("whole", 40), ("part", 4), ("part", 90)])
def test_a_flipped_storage_byte_is_a_corrupt_file_not_a_difference(tmp_path, key, flipped_at):
    """The lazy reader checks each storage's CRC-32 as the loader's whole-file check does (torch.load
    would return the flipped value): reading a tensor that views only part of its storage (bytes
    16-64 of 100 floats) checks the whole storage, the bytes outside the view included."""
    from inflate3d.io.lazy import TensorFile

    base = torch.arange(100.0)
    path = tmp_path / "m.pth"
    torch.save({"whole": torch.arange(50.0) + 0.5, "part": base[4:16]}, path)
    member = "data/1" if key == "part" else "data/0"
    with TensorFile(path) as tf:  # pristine: read, and equal to the values saved
        assert torch.equal(tf.get(key), (torch.arange(50.0) + 0.5) if key == "whole" else base[4:16])
    _flip_stored_byte(path, member, flipped_at * 4)
    with TensorFile(path) as tf:
        with pytest.raises(Inflate3dError, match=f"corrupt torch zip checkpoint \\(bad member m/{member}: its bytes do not match"):
            tf.get(key)
    with pytest.raises(Inflate3dError, match="bad member"):
        load_checkpoint(path)


def test_a_compressed_torch_zip_is_loaded_whole(tmp_path):
    from inflate3d.io.lazy import TensorFile

    path = tmp_path / "c.pth"
    torch.save({"w": torch.arange(10.0)}, path)
    with zipfile.ZipFile(path) as z:
        items = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in items:
            z.writestr(name, payload)
    with TensorFile(path) as tf:
        assert tf._zip is None and torch.equal(tf.get("w"), torch.arange(10.0))


def test_a_storage_referenced_with_two_dtypes_is_read_as_torch_reads_it(tmp_path):
    """torch's loader keeps a storage's first dtype for every view of it; the structure reader and
    diff's lazy reader took each reference's own dtype, so inspect and diff could disagree with
    torch.load. Such a file now goes to the loader."""
    from inflate3d.io.lazy import TensorFile

    path = tmp_path / "two.pth"
    torch.save({"a": torch.arange(4.0), "b": torch.arange(4, dtype=torch.int32)}, path)
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    patched = data.replace(b"X\x01\x00\x00\x001", b"X\x01\x00\x00\x000", 1)  # b's storage key '1' -> a's '0'
    assert patched != data
    _rewrite_member(path, "data.pkl", patched)
    assert torch.load(path, weights_only=True)["b"].dtype == torch.float32
    with pytest.raises(NeedsTorch, match="two dtypes"):
        read_structure(path)
    with TensorFile(path) as tf:
        assert tf.dtype("b") == torch.float32 and torch.equal(tf.get("b"), torch.arange(4.0))


def test_a_negative_storage_size_goes_to_the_loader(tmp_path):
    """The structure reader accepted a storage of -2 values, which torch refuses: its loader decides."""
    path = tmp_path / "neg.pth"
    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    # the storage reference ends 'cpu', memo put, its size (BININT1 2), TUPLE: the size becomes BININT -2
    patched = data.replace(b"cpuq\x06K\x02t", b"cpuq\x06J\xfe\xff\xff\xfft", 1)
    assert patched != data
    _rewrite_member(path, "data.pkl", patched)
    with pytest.raises(NeedsTorch, match="storage reference"):
        read_structure(path)
    with pytest.raises(Inflate3dError):
        load_checkpoint(path)
