"""Hostile and broken inputs, interrupted and size-limited writes, racing writers."""
from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from inflate3d.cli import main

PY = sys.executable


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


class _Touch:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _hostile_files(d: Path, marker: Path) -> dict[str, Path]:
    files = {"zip": d / "evil.pth", "legacy": d / "evil_legacy.pth", "caffe2": d / "evil.pkl"}
    payload = {"conv1.weight": torch.zeros(1), "x": _Touch(marker)}
    torch.save(payload, files["zip"])
    torch.save(payload, files["legacy"], _use_new_zipfile_serialization=False)
    with open(files["caffe2"], "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros(1, np.float32), "x": _Touch(marker)}}, f, protocol=2)
    return files


@pytest.mark.parametrize("command", [["inspect"], ["convert", "-o", "OUT"], ["inflate", "--arch", "i3d_r18", "-o", "OUT"],
                                     ["diff", "SELF"], ["verify", "--against", "SELF"]])
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path, command):
    marker = tmp_path / "marker"
    for kind, path in _hostile_files(tmp_path, marker).items():
        out = tmp_path / f"out_{kind}.safetensors"
        args = [a if a not in ("OUT", "SELF") else (out if a == "OUT" else path) for a in command]
        args = args[:1] + [path] + args[1:]
        result = run(*args, ok=(2,))
        assert "refused: unpickling would call posix.system" in result.stderr, (kind, result.stderr)
        assert "pass --trust-pickle" in result.stderr and "Traceback" not in result.output
        assert not marker.exists() and not out.exists()


def test_trust_pickle_warns(tmp_path):
    import datetime

    path = tmp_path / "dated.pth"
    torch.save({"conv1.weight": torch.zeros(1), "when": datetime.date(2020, 1, 1)}, path)
    assert "refused: unpickling would call datetime.date" in run("inspect", path, ok=(2,)).stderr
    result = run("inspect", path, "--trust-pickle", ok=(2,))
    assert "warning: --trust-pickle" in result.stderr and "not tensors where weights are expected" in result.stderr


def _safetensors_bytes(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


BROKEN = {
    "empty": (lambda p: p.write_bytes(b""), "the file is empty"),
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "missing": (lambda p: None, "no such file"),
    "wrong magic": (lambda p: p.write_bytes(b"GIF89a" + bytes(100)), "not a safetensors, torch zip or pickle"),
    "truncated zip": (lambda p: (torch.save({"w": torch.zeros(1000)}, p), p.write_bytes(p.read_bytes()[:700])),
                      "corrupt torch zip|unreadable torch"),
    "truncated safetensors": (lambda p: p.write_bytes(_safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}, bytes(40))), "truncated"),
    "invalid header json": (lambda p: p.write_bytes(struct.pack("<Q", 10) + b"{not json}" + bytes(8)),
                            "invalid safetensors header"),
    "offsets out of bounds": (lambda p: p.write_bytes(_safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "v": {"dtype": "F32", "shape": [2], "data_offsets": [400, 408]}}, bytes(8))), "truncated|offsets"),
    "header claims a huge tensor": (lambda p: p.write_bytes(_safetensors_bytes(
        {"w": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}, bytes(8))), "truncated"),
    "unsupported dtype": (lambda p: p.write_bytes(_safetensors_bytes(
        {"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8))), "invalid safetensors entry"),
    "non-tensor values": (lambda p: torch.save({"w": torch.zeros(1), "n": 3}, p), "not tensors"),
    "caffe2 holding a list": (lambda p: pickle.dump({"blobs": {"conv1_w": [1, 2]}}, open(p, "wb"), protocol=2),
                              "not arrays"),
    "unreadable": (None, "cannot be read"),
}


@pytest.mark.parametrize("case", list(BROKEN))
@pytest.mark.parametrize("command", ["inspect", "convert", "inflate", "diff"])
def test_broken_files_are_one_line_exit_2_no_output(tmp_path, case, command):
    make, message = BROKEN[case]
    path = Path("/proc/self/mem") if make is None else tmp_path / "broken.pth"
    if make is not None:
        make(path)
    out = tmp_path / "out.safetensors"
    args = {"inspect": [path], "convert": [path, "-o", out], "inflate": [path, "--arch", "i3d_r18", "-o", out],
            "diff": [path, path]}[command]
    result = run(command, *args, ok=(2,))
    assert any(m in result.stderr for m in message.split("|")), result.stderr
    assert str(path) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_nan_weights_warn_and_fail_verification(tmp_path, r18_file):
    good = tmp_path / "good.safetensors"
    run("inflate", r18_file, "--arch", "i3d_r18", "-o", good, "--no-verify")
    from safetensors.torch import load_file

    sd = load_file(str(good))
    sd["backbone.layer2.0.conv1.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_file(sd, str(bad))
    result = run("verify", bad, "--against", r18_file, "--arch", "i3d_r18", ok=(1,))
    assert "FAIL" in result.stdout
    assert "warning: " in result.stderr and "NaN or Inf values in backbone.layer2.0.conv1.conv.weight" in result.stderr


@pytest.fixture(scope="module")
def r50_path(tmp_path_factory, seeded):
    path = tmp_path_factory.mktemp("big") / "r50.safetensors"
    save_file(seeded(50).tensors, str(path))
    return path


def _inflate_cmd(src: Path, out: Path, *extra) -> list[str]:
    return [PY, "-m", "inflate3d", "inflate", str(src), "--arch", "slowfast_r50_4x16", "-o", str(out),
            "--no-verify", *extra]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupts_leave_the_old_file_or_nothing(tmp_path, r50_path, sig):
    reference = tmp_path / "reference.safetensors"
    subprocess.run(_inflate_cmd(r50_path, reference), check=True, capture_output=True)
    complete = reference.read_bytes()
    for i, delay in enumerate((0.5, 1.4, 1.8, 2.2, 2.6)):
        out = tmp_path / f"out{i}.safetensors"
        old = b"old contents" if i % 2 else None
        if old:
            out.write_bytes(old)
        proc = subprocess.Popen(_inflate_cmd(r50_path, out, "--force"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert out.read_bytes() in ((old, complete) if old else (complete,)) if out.exists() else old is None
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_file_size_limit_leaves_nothing(tmp_path, r50_path):
    out = tmp_path / "out.safetensors"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 2**20, 20 * 2**20))

    proc = subprocess.run(_inflate_cmd(r50_path, out), preexec_fn=limit, capture_output=True, text=True)
    assert proc.returncode == 2 and "could not be written (File too large)" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_two_writers_never_corrupt_the_output(tmp_path, r50_path):
    out = tmp_path / "out.safetensors"
    for extra in ([], ["--force"]):
        out.unlink(missing_ok=True)
        procs = [subprocess.Popen(_inflate_cmd(r50_path, out, *extra, "--seed", str(s)), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for s in (1, 2)]
        codes = sorted(p.wait(timeout=120) for p in procs)
        assert codes == ([0, 2] if not extra else [0, 0])
        from safetensors.torch import load_file

        assert len(load_file(str(out))) == 640  # complete, whoever won
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
