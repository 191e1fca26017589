"""Hostile files (issue 13): each case once crashed, hung, blew up memory or hid what it asked for.

Every one must now be refused with one line naming the file and exit 2, quickly, in bounded memory.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

from inflate3d.cli import main
from inflate3d.errors import Inflate3dError
from inflate3d.io.lazy import TensorFile
from inflate3d.io.load import _finite, load_checkpoint
from inflate3d.io.safetensors_header import read_header

PY = sys.executable


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(path: Path, *needles: str, command: str = "inspect") -> str:
    result = cli(command, path)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    err = result.stderr
    assert len(err.strip().splitlines()) == 1 and str(path) in err and "Traceback" not in result.output, err
    for n in needles:
        assert n in err, (n, err)
    return err


# ---- hand-made pickles -------------------------------------------------------------------------

def _str(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def _deep_key_dict(depth: int, wrap_blobs: bool = False) -> bytes:
    """{(((...(0,)...),),): 0}: a dict key that is a tuple nested ``depth`` deep."""
    key = b"K\x00" + b"\x85" * depth  # BININT1 0, then TUPLE1 over and over
    inner = b"}" + key + b"K\x00" + b"s"  # EMPTY_DICT key value SETITEM
    if wrap_blobs:
        inner = b"}" + _str("blobs") + inner + b"s"
    return b"\x80\x04" + inner + b"."


def _torch_zip_with(path: Path, data_pkl: bytes, *, compress: bool = False) -> Path:
    """A real torch zip whose data.pkl is replaced."""
    good = path.with_suffix(".good")
    torch.save({"w": torch.zeros(2)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = data_pkl if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info.filename, data, zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    good.unlink()
    return path


def _pickle_file(path: Path, data: bytes, where: str) -> Path:
    """``data`` as a Caffe2 pickle file (``where`` 'caffe2'), or as a torch zip's data.pkl."""
    if where == "caffe2":
        path.write_bytes(data)
        return path
    return _torch_zip_with(path, data)


def _peak_mib(*cli_args) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS in MiB) of the CLI in a fresh process."""
    # VmHWM, not ru_maxrss: Linux carries the parent's (pytest's) peak across exec into ru_maxrss
    # atexit, not finally: the CLI's process ends with os._exit once its atexit handlers ran
    code = ("import atexit, sys, runpy; sys.argv = ['inflate3d'] + sys.argv[1:]\n"
            "atexit.register(lambda: print('PEAK', [l.split()[1] for l in open('/proc/self/status')"
            " if l.startswith('VmHWM')][0], file=sys.stderr))\n"
            "runpy.run_module('inflate3d', run_name='__main__')")
    proc = subprocess.run([PY, "-c", code, *map(str, cli_args)], capture_output=True, text=True, timeout=600)
    peak = int(proc.stderr.rsplit("PEAK", 1)[1].split()[0]) / 1024
    return proc.returncode, proc.stderr.rsplit("PEAK", 1)[0], peak


# ---- deep nesting: was a segfault (exit 139) ---------------------------------------------------

@pytest.mark.parametrize("where", ["caffe2", "torch zip"])
def test_a_key_nested_200000_deep_is_refused_not_a_segfault(tmp_path, where):
    path = _pickle_file(tmp_path / "deep.pkl", _deep_key_dict(200_000, wrap_blobs=where == "caffe2"), where)
    proc = subprocess.run([PY, "-m", "inflate3d", "inspect", str(path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert "nested more than 1000 deep" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_nesting_under_the_bound_still_loads(tmp_path):
    """The bound is not a refusal of nesting as such: a 50-deep key in metadata loads."""
    key: object = 0
    for _ in range(50):
        key = (key,)
    path = tmp_path / "ok.pth"
    torch.save({"state_dict": {"conv1.weight": torch.ones(2)}, "meta": {key: 1}}, path)
    assert list(load_checkpoint(path).tensors) == ["conv1.weight"]



def _shared_key_dict(levels: int, wrap_blobs: bool = False) -> bytes:
    """{(T0, ..., Tn): 0} with T(i) = (T(i-1), T(i-1)) through the memo: a key of 300 bytes that
    unfolds to 2**levels tuples, all of which hashing visits."""
    key = b"(K\x00q\x00"  # MARK, BININT1 0, BINPUT 0
    for i in range(1, levels + 1):
        key += b"h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"\x86q" + bytes([i])  # BINGET x2, TUPLE2, BINPUT
    inner = b"}" + key + b"t" + b"K\x00" + b"s"  # TUPLE (since MARK), SETITEM
    if wrap_blobs:
        return b"\x80\x04}" + _str("blobs") + inner + b"s."
    return b"\x80\x02" + inner + b"."  # torch's protocol: its unpickler does read these opcodes


@pytest.mark.parametrize("where", ["caffe2", "torch zip"])
def test_a_key_that_unfolds_to_2_to_the_60_tuples_is_refused_not_a_hang(tmp_path, where):
    path = _pickle_file(tmp_path / "shared.pkl", _shared_key_dict(60, wrap_blobs=where == "caffe2"), where)
    for args in (["inspect", path], ["inspect", "--values", path]):
        proc = subprocess.run([PY, "-m", "inflate3d", *map(str, args)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr[-500:])
        assert "unfold to more than" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_sharing_that_does_not_unfold_far_still_loads(tmp_path):
    """The bound is on unfolding, not on sharing: a tensor and a tuple referenced twice load."""
    w, key = torch.ones(2), tuple(range(100))
    path = tmp_path / "ok.pth"
    torch.save({"state_dict": {"conv1.weight": w, "tied.weight": w}, "meta": {key: key, "again": (key, key)}}, path)
    assert list(load_checkpoint(path).tensors) == ["conv1.weight", "tied.weight"]

# ---- views larger than their storage: was a hang (2**40 sums) ----------------------------------

def test_a_zero_stride_view_of_one_value_is_refused_before_any_work(tmp_path):
    path = tmp_path / "hang.pth"
    torch.save({"w": torch.zeros(1).expand(2**20, 2**20)}, path)
    assert path.stat().st_size < 2000
    err = refused(path, "claims 1,099,511,627,776 values", "strides (0, 0)", "storage of 1")
    assert "4,294,967,296" not in err


def test_overlapping_views_claiming_more_than_the_storage_are_refused(tmp_path):
    path = tmp_path / "overlap.pth"
    torch.save({"w": torch.arange(4.0).as_strided((3, 3), (1, 0))}, path)
    refused(path, "claims 9 values", "storage of 4")
    fine = tmp_path / "fine.pth"  # an overlapping view within its storage is data, not an attack
    torch.save({"w": torch.arange(4.0).as_strided((2, 2), (1, 1))}, fine)
    assert load_checkpoint(fine).tensors["w"].tolist() == [[0.0, 1.0], [1.0, 2.0]]


def test_the_finite_screen_works_chunk_by_chunk():
    t = torch.arange(40.0)
    assert _finite(t, chunk=7)
    t[38] = float("nan")  # in the last chunk only
    assert not _finite(t, chunk=7)
    t[38] = 0.0
    t[3] = float("inf")
    assert not _finite(t.reshape(5, 8).t(), chunk=7)  # non-contiguous


# ---- memory amplification: 2.1 GB, 4.7 GB and 2.56 GB from small files -------------------------

def _codecs_chain(times: int) -> bytes:
    body = _str("a")
    for _ in range(times):  # _codecs.encode(_codecs.encode(...), 'hex')
        body = _str("_codecs") + _str("encode") + b"\x93" + body + _str("hex") + b"\x86R"
    return b"\x80\x04}" + _str("blobs") + b"}" + _str("x") + body + b"ss."


def _numpy_reconstruct(shape: int, dtype: str) -> bytes:
    mod = "numpy.core.multiarray"
    call = (_str(mod) + _str("_reconstruct") + b"\x93" + _str("numpy") + _str("ndarray") + b"\x93"
            + b"J" + struct.pack("<i", shape) + b"\x85" + _str(dtype) + b"\x87R")
    return b"\x80\x04}" + _str("blobs") + b"}" + _str("x") + call + b"ss."


@pytest.mark.parametrize("name,data,needle", [
    ("codecs chain", _codecs_chain(30), "only latin1 text is allowed"),
    ("object array", _numpy_reconstruct(2**29, "O"), "dtype object"),
    ("float array", _numpy_reconstruct(2**29, "f8"), "arrays larger than the file itself"),
])
def test_small_pickles_cannot_allocate_gigabytes(tmp_path, name, data, needle):
    path = tmp_path / "amp.pkl"
    path.write_bytes(data)
    assert len(data) < 1000
    code, err, peak = _peak_mib("inspect", path)
    assert code == 2 and needle in err and str(path) in err, (code, err)
    assert peak < 700, f"{name}: {peak:.0f} MiB"


def test_a_legacy_file_claiming_a_huge_storage_is_refused_in_bounded_memory(tmp_path):
    """Found by fuzzing: torch's legacy reader sizes a storage from the file before reading it."""
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(4.0)}, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    at = raw.index(b"K\x04", raw.index(b"cpu"))  # ('storage', FloatStorage, key, 'cpu', 4): its size
    path.write_bytes(raw[:at] + b"J" + struct.pack("<i", 2**30) + raw[at + 2:])  # 4 GiB
    code, err, peak = _peak_mib("inspect", path)
    assert code == 2 and "refused: loading it would take more than" in err and "cannot hold" in err, err
    assert peak < 1100, peak


def test_a_zip_bomb_is_refused_before_it_is_unpacked(tmp_path):
    bomb = pickle.dumps({"w": "x"}, protocol=2)[:-1] + b"." + bytes(64 * 2**20)
    path = _torch_zip_with(tmp_path / "bomb.pth", bomb, compress=True)
    assert path.stat().st_size < 2**20
    code, err, peak = _peak_mib("inspect", path)
    assert code == 2 and "unpack to" in err and "zip" in err, err
    assert peak < 700, peak


# ---- tracebacks (exit 1) that are now one line ---------------------------------------------------

def _caffe2(path: Path, **extra) -> Path:
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.ones((2, 3), np.float32)}, **extra}, f, protocol=2)
    return path


@pytest.mark.parametrize("meta,outcome", [
    (np.zeros(3, np.float32), "its 'inflate3d' metadata is a ndarray, not a mapping"),
    ([1, 2], "its 'inflate3d' metadata is a list, not a mapping"),
    ({"arch": 10**5000}, None),  # loads; the value is reported as unprintable
])
def test_odd_caffe2_metadata(tmp_path, meta, outcome):
    path = _caffe2(tmp_path / "m.pkl", inflate3d=meta)
    if outcome:
        refused(path, outcome)
    else:
        ckpt = load_checkpoint(path)
        assert ckpt.metadata == {"arch": "<unprintable int>"}
        assert ckpt.tensors["conv1_w"].tolist() == [[1.0] * 3] * 2


def test_an_empty_blob_loads_and_bytes_of_a_size_is_refused(tmp_path):
    """Python 3 pickles an empty blob's data (b"") at protocol 2 as ``bytes()``: that was refused
    as code. Only the empty call is taken: ``bytes(2**30)`` would allocate 1 GiB."""
    path = tmp_path / "empty.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.ones((2, 3), np.float32), "empty": np.zeros((0, 3), np.float32)}}, f,
                    protocol=2)
    assert b"__builtin__\nbytes" in path.read_bytes()
    ckpt = load_checkpoint(path)
    assert ckpt.tensors["empty"].shape == (0, 3) and ckpt.tensors["conv1_w"].tolist() == [[1.0] * 3] * 2
    big = tmp_path / "big.pkl"
    big.write_bytes(b"\x80\x02}" + b"X\x05\x00\x00\x00blobs}X\x01\x00\x00\x00xc__builtin__\nbytes\nJ\x00\x00\x00\x40\x85Rss.")
    code, err, peak = _peak_mib("inspect", big)
    assert code == 2 and "only the empty bytes" in err and str(big) in err, (code, err)
    assert peak < 700


def test_a_longdouble_blob_is_refused(tmp_path):
    path = tmp_path / "ld.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.ones(3, np.longdouble)}}, f, protocol=2)
    refused(path, "dtype float128", "only little-endian float16/32/64")


def _st(header_json: str | bytes, data: bytes = b"") -> bytes:
    raw = header_json.encode() if isinstance(header_json, str) else header_json
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("name,raw,needle", [
    ("JSON nested 100,000 deep", _st('{"a":' * 100_000 + "1" + "}" * 100_000), "nested too deep"),
    ("a 5,000-digit number", _st('{"w":{"dtype":"F32","shape":[' + "9" * 5000 + '],"data_offsets":[0,4]}}', bytes(4)),
     "5000-digit number"),
    # no values, and no tensor either: torch's sizes are int64 (was an internal error in --values and diff)
    ("a shape of [10**19, 0]", _st('{"w":{"dtype":"F32","shape":[10000000000000000000,0],"data_offsets":[0,0]}}'),
     "which no tensor can have"),
    # a list is unhashable: looking it up among the dtypes was an internal error (exit 3)
    ("a list as dtype", _st('{"w":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}', bytes(4)),
     "invalid safetensors entry 'w'"),
    ("a negative offset", _st('{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', bytes(4)),
     "invalid safetensors entry 'w'"),
    ("a bool in a shape", _st('{"w":{"dtype":"F32","shape":[2,true],"data_offsets":[0,8]}}', bytes(8)),
     "invalid safetensors entry 'w'"),
    ("a shape of [2**62, 2**62, 0]", _st('{"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,0],'
                                         '"data_offsets":[0,0]}}'), "which no tensor can have"),
])
def test_hostile_safetensors_json(tmp_path, name, raw, needle):
    path = tmp_path / "h.safetensors"
    path.write_bytes(raw)
    refused(path, needle)


def test_a_list_as_dtype_is_refused_by_every_command(tmp_path):
    """It was an internal error (exit 3) in inspect, convert and diff alike: they share the header check."""
    path = tmp_path / "h.safetensors"
    path.write_bytes(_st('{"w":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}', bytes(4)))
    for args in (("convert", path, "--to", "pyslowfast", "-o", tmp_path / "out.pth"), ("diff", path, path)):
        result = cli(*args)
        assert result.exit_code == 2 and "invalid safetensors entry 'w'" in result.stderr, (args, result.output)
    assert not (tmp_path / "out.pth").exists()


def test_digits_in_a_name_are_not_a_long_number(tmp_path):
    """A run of 21 digits makes the header's ints checked as they are parsed; in a name it is text."""
    from inflate3d.io.structure import read_structure

    path = tmp_path / "digits.safetensors"
    name = "layer" + "1234567890" * 3
    path.write_bytes(_st('{"%s":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"n":"%s"}}'
                         % (name, "9" * 30), bytes(4)))
    ckpt = read_structure(path)
    assert list(ckpt.tensors) == [name] and ckpt.metadata == {"n": "9" * 30}
    path.write_bytes(_st('{"%s":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":%s}}' % (name, "9" * 21), bytes(4)))
    refused(path, "21-digit number")


# ---- the two safetensors readers must agree -------------------------------------------------------

ENTRY = '"{k}":{{"dtype":"F32","shape":[{n}],"data_offsets":[{a},{b}]}}'
DISAGREED = {  # each was accepted by the lazy reader (diff); the library refuses all but duplicates
    "overlapping offsets": ("{" + ENTRY.format(k="a", n=2, a=0, b=8) + "," + ENTRY.format(k="b", n=2, a=4, b=12) + "}", 12),
    "a gap": ("{" + ENTRY.format(k="a", n=1, a=0, b=4) + "," + ENTRY.format(k="b", n=1, a=8, b=12) + "}", 12),
    "duplicate keys": ("{" + ENTRY.format(k="a", n=1, a=0, b=4) + "," + ENTRY.format(k="a", n=1, a=0, b=4) + "}", 4),
    "a bool shape": ('{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}', 4),
    "list-valued metadata": ('{"__metadata__":{"x":[1]},' + ENTRY.format(k="a", n=1, a=0, b=4) + "}", 4),
    "empty-list metadata (found by fuzzing)": ('{"__metadata__":[],' + ENTRY.format(k="a", n=1, a=0, b=4) + "}", 4),
    "bytes after the last tensor": ("{" + ENTRY.format(k="a", n=1, a=0, b=4) + "}", 12),
}


@pytest.mark.parametrize("case", list(DISAGREED))
def test_every_reader_refuses_what_the_safetensors_library_refuses(tmp_path, case):
    header, nbytes = DISAGREED[case]
    path = tmp_path / "x.safetensors"
    path.write_bytes(_st(header, bytes(range(nbytes))))
    if case != "duplicate keys":  # the library keeps one of the two silently; we refuse the ambiguity
        with pytest.raises(Exception):  # noqa: B017,PT011 - the library's own verdict
            with safe_open(str(path), framework="pt") as f:
                [f.get_tensor(k) for k in f.keys()]  # noqa: B018
    for read in (load_checkpoint, TensorFile, read_header):
        with pytest.raises(Inflate3dError, match=str(path)):
            read(path)
    result = cli("diff", path, path)
    assert result.exit_code == 2 and str(path) in result.stderr


def test_a_valid_file_reads_the_same_through_every_reader(tmp_path):
    path = tmp_path / "ok.safetensors"
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([True, False]), "c": torch.zeros(0, 3)}
    save_file(tensors, str(path), metadata={"k": "v"})
    header, meta, start = read_header(path)
    assert list(header) == ["a", "b", "c"] or set(header) == {"a", "b", "c"}
    assert meta == {"k": "v"} and start > 8
    ckpt = load_checkpoint(path)
    with TensorFile(path) as tf:
        for k, t in tensors.items():
            assert torch.equal(ckpt.tensors[k], t) and torch.equal(tf.get(k), t)


def test_the_lazy_reader_keeps_reading_the_file_it_opened(tmp_path):
    """diff used to reopen the path per tensor: a file atomically replaced mid-run had the old
    header's offsets applied to the new bytes."""
    path = tmp_path / "x.safetensors"
    save_file({"a": torch.full((4,), 1.0), "b": torch.full((4,), 2.0)}, str(path))
    with TensorFile(path) as tf:
        assert tf.get("a").tolist() == [1.0] * 4
        new = tmp_path / "new.safetensors"
        save_file({"b": torch.full((2,), 7.0), "a": torch.full((6,), 9.0)}, str(new))
        os.replace(new, path)
        assert tf.get("b").tolist() == [2.0] * 4 and tf.get("a").tolist() == [1.0] * 4


# ---- every global named ---------------------------------------------------------------------------

def test_a_caffe2_pickle_asking_for_two_globals_names_both(tmp_path):
    data = (b"\x80\x04}" + _str("blobs") + b"}" + _str("a") + _str("posix") + _str("system") + b"\x93" + _str("id")
            + b"\x85Rs" + _str("b") + _str("builtins") + _str("eval") + b"\x93" + _str("1") + b"\x85Rss.")
    path = tmp_path / "two.pkl"
    path.write_bytes(data)
    refused(path, "would call posix.system, builtins.eval", "Nothing was run")


def test_a_pop_between_stack_globals_strings_does_not_hide_it(tmp_path):
    hidden = (b"\x80\x04" + _str("posix") + _str("decoy") + b"0" + _str("system") + b"\x93"  # POP in between
              + _str("id") + b"\x85R.")
    path = _torch_zip_with(tmp_path / "hidden.pth", hidden)
    result = cli("inspect", path)  # (torch warns first that STACK_GLOBAL's protocol 4 is unusual)
    assert result.exit_code == 2 and "error: " in result.stderr.splitlines()[-1]
    assert f"{path}: refused: unpickling would call posix.system. Nothing was run" in result.stderr


# ---- terminal injection ---------------------------------------------------------------------------

def test_key_names_cannot_split_the_error_line_or_drive_the_terminal(tmp_path):
    path = tmp_path / "inj.pth"
    torch.save({"conv1.weight": torch.zeros(1), "evil\n\x1b[2Jkey": 3}, path)
    err = refused(path, "evil\\n\\x1b[2Jkey")
    assert "\x1b" not in err


def test_a_10_mib_name_is_cut(capsys):
    from inflate3d.console import Console

    Console().error("bad key " + "k" * (10 * 2**20) + "\x07; do this")
    err = capsys.readouterr().err
    assert len(err) < 2200 and "characters cut" in err and err.rstrip().endswith("\\x07; do this")


# ---- Hugging Face folders: config.json is the file's too -------------------------------------------

def _hf_vit_folder(path: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, patch_size=16, hidden_size=64, num_hidden_layers=1, num_attention_heads=1,
                       intermediate_size=128, layer_norm_eps=1e-6, hidden_act="gelu")).save_pretrained(path)
    return path


@pytest.mark.parametrize("edit,needle", [
    (lambda c: "[" * 100_000 + "]" * 100_000, "nested too deep"),  # was an internal error (RecursionError)
    (lambda c: "[1, 2]", "not an object"),  # was an internal error ('list' object has no attribute 'get')
    (lambda c: json.dumps({**c, "num_attention_heads": "x"}), "attention heads cannot split the width 64"),
    (lambda c: json.dumps({**c, "num_attention_heads": -3}), "attention heads cannot split the width 64"),
    (lambda c: json.dumps({**c, "layer_norm_eps": "x"}), "LayerNorm eps 'x' is not a number"),
])
def test_odd_hugging_face_configs_are_one_line(tmp_path, edit, needle):
    folder = _hf_vit_folder(tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(edit(config))
    refused(folder, needle)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_named_pipe_is_refused_not_waited_on(tmp_path):
    """A pipe named like a checkpoint, alone or in a walked folder, blocked the first open for ever."""
    os.mkfifo(tmp_path / "x.pth")
    for target in (tmp_path / "x.pth", tmp_path):
        proc = subprocess.run([PY, "-m", "inflate3d", "inspect", str(target)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and "is not a regular file" in proc.stderr, (proc.returncode, proc.stderr)


def test_the_structure_reader_reads_the_opcodes_torch_reads_and_no_other():
    """Read from the installed torch's own weights-only loader, so an upgrade that changes its set
    fails here rather than letting inspect and the loader disagree."""
    import inspect as pyinspect
    import re

    from torch import _weights_only_unpickler

    from inflate3d.io.structure_unpickler import TORCH_READS

    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\[0\]", pyinspect.getsource(_weights_only_unpickler.Unpickler.load)))
    assert len(names) > 30 and {getattr(pickle, n)[0] for n in names} == TORCH_READS


@pytest.mark.parametrize("old,new,opcode", [
    (b"X\x07\x00\x00\x00fc.bias", b"\x8c\x07fc.bias", "SHORT_BINUNICODE"),  # protocol 4's short string
    (b")R", b"(lR", "LIST"),  # protocol 0's list, as the arguments of OrderedDict()
])
def test_inspect_refuses_what_the_loader_refuses(tmp_path, old, new, opcode):
    """inspect described such a 2D ResNet-18 ("inflate it") and inflate then refused the file: the
    structure reader took the opcodes torch's weights-only loader does not read."""
    import torchvision

    good, path = tmp_path / "good.pth", tmp_path / "odd.pth"
    torch.save(torchvision.models.resnet18().state_dict(), good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                assert old in data
                data = data.replace(old, new, 1)
            dst.writestr(info.filename, data)
    messages = [refused(path, f"opcode {opcode}", command=command) for command in ("inspect", "inflate")]
    assert messages[0] == messages[1]


def test_an_opcode_torch_reads_not_is_named_not_called_code(tmp_path):
    """A LIST opcode (protocol 0; torch.save never writes it) and no global: torch's weights-only
    loader refuses it, and the refusal said 'would call code'. It names the opcode."""
    path = _torch_zip_with(tmp_path / "listop.pth", b"\x80\x02}(X\x01\x00\x00\x00m(K\x01lu.")
    result = cli("convert", path, "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "does not read the pickle opcode LIST" in result.stderr and "no global is called" in result.stderr
    assert "would call" not in result.stderr and not (tmp_path / "out.safetensors").exists()
