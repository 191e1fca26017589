"""Property tests: whatever the bytes or keys, inflate3d answers or raises its own error."""
from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from inflate3d.errors import Inflate3dError
from inflate3d.inflate.convert import match_arch
from inflate3d.inflate.detect import detect_scheme, infer_arch
from inflate3d.io.lazy import TensorFile
from inflate3d.io.load import load_checkpoint
from inflate3d.slowfast import build_model

ROOT = Path(__file__).resolve().parents[2]
_DIR = Path(tempfile.mkdtemp(prefix="inflate3d-fuzz-"))


def _seeds() -> list[bytes]:
    sd = {k: v.detach().clone() for k, v in
          build_model("slowonly_r18", num_classes=3, init=False, base_channels=2).state_dict().items()}
    small = dict(list(sd.items())[:10])
    out = []
    save_file(sd, str(_DIR / "a.safetensors"))
    torch.save({"state_dict": small}, _DIR / "b.pth")
    torch.save(small, _DIR / "c.pth", _use_new_zipfile_serialization=False)
    with open(_DIR / "d.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.ones((2, 3, 1, 7, 7), np.float32), "pred_b": np.zeros(3, np.float32)}},
                    f, protocol=2)
    for name in ("a.safetensors", "b.pth", "c.pth", "d.pkl"):
        out.append((_DIR / name).read_bytes())
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at:at + 16] = bytes(len(data[at:at + 16]))
    return bytes(data)


@settings(max_examples=400, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(raw=mutated())
def test_loaders_answer_or_raise_their_own_error(raw):
    path = _DIR / "case.bin"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for load in (lambda: load_checkpoint(path), lambda: [TensorFile(path).get(k) for k in TensorFile(path).keys()]):
            try:
                load()
            except Inflate3dError:
                pass


NATIVE = {k: torch.empty(v.shape, device="meta") for k, v in
          build_model("slowonly_r18", num_classes=3, device="meta", init=False).state_dict().items()}
PARTS = ["backbone", "cls_head", "s1", "pathway0_stem", "blocks", "0", "conv1_w", "t_conv1_w", "layer1", "conv",
         "weight", "bn", "multipathway_blocks", "fc", "res2_0_branch2a_w", "slow_path", "conv1"]


@settings(max_examples=300, deadline=2000)
@given(keys=st.lists(st.lists(st.sampled_from(PARTS), min_size=1, max_size=5).map(".".join), max_size=12))
def test_the_scheme_detector_answers_or_raises(keys):
    try:
        name, two = detect_scheme(keys, "fuzz")
        assert name in {"mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "torchvision3d"} and isinstance(two, bool)
    except Inflate3dError:
        pass


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # torch, for fuzzed 0-widths
@settings(max_examples=200, deadline=5000)
@given(edits=st.lists(st.tuples(st.sampled_from(sorted(NATIVE)), st.sampled_from(["drop", "shape"]),
                                st.integers(0, 9)), min_size=1, max_size=6))
def test_architecture_inference_answers_or_raises(edits):
    shapes = dict(NATIVE)
    for key, op, n in edits:
        if op == "drop":
            shapes.pop(key, None)
        else:
            dims = list(NATIVE[key].shape) or [1]
            dims[n % len(dims)] = n
            shapes[key] = torch.empty(dims, device="meta")
    try:
        match_arch(shapes, infer_arch(shapes, "fuzz"), "fuzz")
    except Inflate3dError:
        pass


def test_a_huge_memo_index_does_not_hang(tmp_path):
    """PROTO 2, EMPTY_DICT, LONG_BINPUT 0xfffffff0, STOP: the C unpickler would size its memo by it."""
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x02}r\xf0\xff\xff\xff.")
    start = time.perf_counter()
    with pytest.raises(Inflate3dError, match="without a 'blobs' dict"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 2


def test_the_fuzz_script_passes_a_short_run():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--cases", "150", "--seed", "7"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| crash | 0 |" in proc.stdout and "| hang | 0 |" in proc.stdout and "| partial | 0 |" in proc.stdout
