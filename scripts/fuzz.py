"""Fuzz inflate3d's readers and commands with broken and hostile files, and interrupt its writes.

    .venv/bin/python scripts/fuzz.py [--cases 10000] [--seed 0] [--timeout 20]

Cases run in forked children (so a segfault, a hang in C or a memory blow-up is seen, not
suffered), under a CPU-time limit per case (20 s; on a shared machine wall time is not the case's
own, so 300 s of wall time without a verdict is a hang too) and a data-size limit; each case
reports its child's peak RSS.
Cases:
- file: a small valid file of every format (safetensors, torch zip, legacy torch pickle, Caffe2
  .pkl, a 2D ResNet, pickles carrying an ``os.system`` payload) mutated (byte flips, truncations,
  insertions, header edits), then read by the loader, the lazy reader, the structure reader (it
  must agree with the loader wherever the loader reads the file), or a command that reads files
  (inspect, convert to each format, diff, verify, inflate);
- keys: key sets and shapes perturbed for the scheme detector and the architecture inference;
- nesting: containers nested 500 to 100,000 deep, in Caffe2 pickles, torch zips, legacy files;
- strides: views whose sizes and strides (zero, overlapping, out of bounds) claim more than the storage;
- amplify: pickles and zips that ask for far more memory than their size (codec chains, numpy
  reconstruct with huge shapes and odd dtypes, huge length fields, zip bombs);
- readers: safetensors headers edited at random: the loader, the lazy reader and the header reader
  must give one verdict, and never accept what the safetensors library refuses;
- signals: one or two SIGINT/SIGTERM (20 ms apart) at a random moment of a convert; or a signal
  raised just before or just after the rename that commits the output.
Outcomes: ok (read or refused with inflate3d's one-line error), code run (a payload's marker file
appeared), crash (another exception, a traceback or click's "Aborted!", a death by signal, a wrong
exit code), hang (over the time limits), blow-up (peak RSS over 1.5 GiB, or out of memory), partial
(a failed or interrupted write that left its output or a temporary file, or an exit code that
does not say what is on disk). Exits 1 if any of those is not zero.
"""
from __future__ import annotations

import argparse
import collections
import json
import mmap
import os
import pickle
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inflate3d.errors import Inflate3dError  # noqa: E402
from inflate3d.inflate.convert import convert, match_arch  # noqa: E402
from inflate3d.inflate.detect import detect_scheme, infer_arch  # noqa: E402
from inflate3d.io.lazy import TensorFile  # noqa: E402
from inflate3d.io.load import load_checkpoint  # noqa: E402
from inflate3d.io.safetensors_header import read_header  # noqa: E402
from inflate3d.slowfast import build_model  # noqa: E402

PEAK_LIMIT_MIB = 1536
WALL_LIMIT = 300  # seconds without a verdict, whatever the CPU use
BAD = ("code run", "crash", "hang", "blow-up", "partial")
KINDS = [("file", 55), ("keys", 12), ("nesting", 3), ("strides", 5), ("amplify", 6), ("readers", 12),
         ("signals", 3)]


class Bad(Exception):
    """A finding: the first argument is its outcome."""


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def seed_files(d: Path, marker: Path) -> dict[str, Path]:
    """Small valid files of every format, with real (slowonly_r18) native and Caffe2 names."""
    model = build_model("slowonly_r18", num_classes=3, init=False, base_channels=2)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    small = dict(list(sd.items())[:12])
    seeds = {"safetensors": d / "native.safetensors", "zip": d / "zip.pth", "legacy": d / "legacy.pth",
             "caffe2": d / "c2.pkl", "2d": d / "r18_2d.pth", "evil zip": d / "evil.pth",
             "evil legacy": d / "evil_legacy.pth", "evil caffe2": d / "evil.pkl"}
    save_file(sd, str(seeds["safetensors"]))
    torch.save({"state_dict": small}, seeds["zip"])
    torch.save(small, seeds["legacy"], _use_new_zipfile_serialization=False)
    c2 = convert(sd, source=None, target="caffe2", origin="seed").tensors
    with open(seeds["caffe2"], "wb") as f:
        pickle.dump({"blobs": {k: v.numpy() for k, v in list(c2.items())[:20]}}, f, protocol=2)
    import torchvision

    torch.save({k: v.half() for k, v in torchvision.models.resnet18().state_dict().items()}, seeds["2d"])
    evil = {"conv1.weight": torch.zeros(1), "x": _Payload(marker)}
    torch.save(evil, seeds["evil zip"])
    torch.save(evil, seeds["evil legacy"], _use_new_zipfile_serialization=False)
    with open(seeds["evil caffe2"], "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros(1, np.float32), "x": _Payload(marker)}}, f, protocol=2)
    return seeds


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "header", "zero"])
    if kind == "flip" or not b:
        for _ in range(rng.randint(1, 8)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "insert":
        at = rng.randrange(len(b) + 1)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    elif kind == "header":  # edit within the first 512 bytes, where headers live
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(min(len(b), 512))] = rng.choice(b'0123456789{}[]":,-eEtrue' + bytes([0, 0x80, 0xff]))
    else:
        start = rng.randrange(len(b))
        b[start:start + rng.randint(1, 64)] = bytes(min(64, len(b) - start))
    return bytes(b)


# ---- running a command the way a user does ---------------------------------------------------

def run_cli(args: list[str], out: Path | None = None, *, interrupted: bool = False) -> int:
    """Run the CLI in this process; raise Bad for a crash or for a partial output."""
    from click.testing import CliRunner

    from inflate3d.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    err = result.stderr if result.stderr_bytes is not None else ""
    allowed = {0, 1, 2} | ({130, 143} if interrupted else set())
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise Bad("crash", f"{type(result.exception).__name__}: {result.exception}"[:300])
    if result.exit_code not in allowed or "Traceback" in result.output or "Aborted!" in result.output \
            or "internal error" in err:
        raise Bad("crash", f"exit {result.exit_code}: {result.output.strip()[-300:]}")
    if sum(line.startswith("error: ") for line in err.splitlines()) > 1 or (result.exit_code == 2 and len(err.strip().splitlines()) > 6):
        raise Bad("crash", f"more than one error line: {err[-300:]}")
    if "MemoryError" in err or "not enough memory" in err or "can't allocate memory" in err:
        raise Bad("blow-up", err.strip()[-300:])
    if out is not None:
        debris = [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")]
        if debris:
            raise Bad("partial", f"temporary files left: {debris}")
        if result.exit_code != 0 and out.exists():
            raise Bad("partial", f"exit {result.exit_code} but {out.name} exists: {err.strip()[-200:]}")
    return result.exit_code


def fmt_args(fmt: str) -> list[str]:
    return ["--format", fmt] + (["--to", "caffe2"] if fmt == "pkl" else [])


def case_file(rng: random.Random, seeds: dict[str, Path], tmp: Path) -> str:
    name = rng.choice([n for n in seeds if n != "2d" and not n.startswith("evil")] * 6
                      + ["2d"] + [n for n in seeds if n.startswith("evil")])
    src = seeds[name]
    path = tmp / f"case{src.suffix}"
    path.write_bytes(mutate(src.read_bytes(), rng) if rng.random() < 0.95 else src.read_bytes())
    out = tmp / "out" / f"out.{rng.choice(['safetensors', 'pth', 'pkl'])}"
    out.parent.mkdir(exist_ok=True)
    if name == "2d":
        mode = rng.choice(["inflate", "inflate", "verify", "load"])
    else:
        mode = rng.choice(["load"] * 5 + ["lazy"] * 3 + ["structure"] * 3
                          + ["inspect", "convert", "convert", "diff", "diff", "verify"])
    if mode == "load":
        load_checkpoint(path)
    elif mode == "structure":
        structure_agrees(path)
    elif mode == "lazy":
        with TensorFile(path) as tf:
            for k in tf.keys()[:5]:
                tf.get(k)
    elif mode == "inspect":
        run_cli(["inspect", path])
    elif mode == "convert":
        run_cli(["convert", path, "-o", out, *fmt_args(out.suffix[1:])], out)
    elif mode == "diff":
        run_cli(["diff", path, rng.choice([path, src])])
    elif mode == "verify":
        a, b = (seeds["safetensors"], path) if name == "2d" else (path, seeds["2d"])
        run_cli(["verify", a, "--against", b, "--arch", "slowonly_r18"])
    else:
        extra = rng.choice([["--dry-run"], ["--no-verify"]])
        run_cli(["inflate", path, "--arch", "i3d_r18", "-o", out.with_suffix(".safetensors"), *extra],
                out.with_suffix(".safetensors"))
    return f"file {name} {mode}"


def structure_agrees(path: Path) -> None:
    """The torch-free structure reader (inspect's) never contradicts the loader: where the loader
    reads a file, it gives the same names, shapes, dtypes and container, or leaves it to the loader."""
    from inflate3d.io.structure import NeedsTorch, read_structure

    try:
        got = read_structure(path)
    except NeedsTorch:
        got = None
    except Inflate3dError as e:
        got = e
    try:
        want = load_checkpoint(path)
    except Inflate3dError:
        return
    if isinstance(got, Inflate3dError):
        raise Bad("crash", f"structure refused what the loader reads: {str(got)[:200]}")
    if got is not None:
        shapes = {k: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in want.tensors.items()}
        if {k: (t.shape, t.dtype) for k, t in got.tensors.items()} != shapes or \
                (got.container, got.prefix, got.metadata) != (want.container, want.prefix, want.metadata):
            raise Bad("crash", "structure and loader disagree")


def case_keys(rng: random.Random, native: dict[str, torch.Tensor]) -> str:
    keys = list(native)
    if rng.random() < 0.3:  # random key soup for the detector
        parts = ["backbone", "cls_head", "s1", "pathway0_stem", "blocks", "0", "conv1_w", "t_", "layer1", "conv",
                 "weight", "bn", "multipathway_blocks", "fc", "res2_0_branch2a_w", "slow_path", "module"]
        soup = {".".join(rng.choice(parts) for _ in range(rng.randint(1, 5))): torch.zeros(1)
                for _ in range(rng.randint(0, 12))}
        detect_scheme(soup.keys(), "fuzz")
        return "keys soup"
    mutated = dict(native)
    for _ in range(rng.randint(1, 6)):
        k = rng.choice(keys)
        op = rng.random()
        if op < 0.4:
            mutated.pop(k, None)
        elif op < 0.8:
            shape = list(native[k].shape) or [1]
            shape[rng.randrange(len(shape))] = rng.randint(0, 9)
            mutated[k] = torch.empty(shape, device="meta")
        else:
            mutated[k.replace(rng.choice(["layer", "conv", "bn", "0"]), rng.choice(["layer9", "x", "1", ""]), 1)] = native[k]
    info = infer_arch(mutated, "fuzz")
    match_arch(mutated, info, "fuzz")
    return "keys shapes"


# ---- hand-made hostile pickles ---------------------------------------------------------------

def _s(text: str) -> bytes:
    b = text.encode()
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + struct.pack("<I", len(b)) + b


def _torch_zip(path: Path, data_pkl: bytes, compress: bool = False) -> None:
    good = path.with_suffix(".good")
    torch.save({"w": torch.zeros(2)}, good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = data_pkl if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info.filename, data, zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    good.unlink()


def _container(rng: random.Random, inner: bytes) -> tuple[bytes, str]:
    """Wrap an object's opcodes as a Caffe2 pickle, a torch zip's data.pkl or a plain dict."""
    where = rng.choice(["caffe2", "zip", "dict"])
    if where == "caffe2":
        return b"\x80\x04}" + _s("blobs") + b"}" + _s("x") + inner + b"ss.", where
    return b"\x80\x02}" + _s("x") + inner + b"s.", where


def _write_pickle(rng: random.Random, tmp: Path, inner: bytes) -> tuple[Path, str]:
    data, where = _container(rng, inner)
    path = tmp / "hostile.pkl"
    if where == "zip":
        _torch_zip(path, data)
    else:
        path.write_bytes(data)
    return path, where


def _read_with_a_command(rng: random.Random, path: Path, tmp: Path, seeds: dict[str, Path]) -> str:
    mode = rng.choice(["load", "inspect", "convert", "diff", "verify"])
    out = tmp / "out" / "out.safetensors"
    out.parent.mkdir(exist_ok=True)
    if mode == "load":
        load_checkpoint(path)
    elif mode == "convert":
        run_cli(["convert", path, "-o", out], out)
    elif mode == "diff":
        run_cli(["diff", seeds["safetensors"], path])
    elif mode == "verify":
        run_cli(["verify", path, "--against", seeds["2d"]])
    else:
        run_cli(["inspect", path])
    return mode


def case_nesting(rng, seeds, tmp) -> str:
    depth = rng.choice([rng.randint(500, 3000), rng.randint(3000, 100_000)])
    op = rng.choice(["tuple", "pairs", "list", "dict"])
    if op == "tuple":
        body = b"K\x00" + b"\x85" * depth
        inner = b"}" + body + b"K\x00s"  # a dict whose key is nested: hashed on SETITEM
    elif op == "list":
        inner = b"]" * depth + b"a" * (depth - 1)  # [[[...]]] built by APPEND
    elif op == "dict":
        inner = (b"}" + _s("k")) * depth + b"K\x00" + b"s" * depth
    else:  # ((((0, 0), 0), 0), ...) as a dict key
        inner = b"}" + b"K\x00" + b"K\x00\x86" * depth + b"K\x00s"
    path, where = _write_pickle(rng, tmp, inner)
    return f"nesting {op} {where} {_read_with_a_command(rng, path, tmp, seeds)}"


def case_strides(rng, seeds, tmp) -> str:
    storage = torch.arange(float(rng.randint(1, 64)))
    n = storage.numel()
    dims = rng.randint(1, 4)
    size = [rng.choice([0, 1, 2, 3, 2**rng.randint(4, 20)]) for _ in range(dims)]
    stride = [rng.choice([0, 0, 1, 2, n]) for _ in range(dims)]
    offset = rng.randint(0, n - 1)
    try:
        view = torch.as_strided(storage, size, stride, offset)
    except RuntimeError:
        return "strides invalid to build"
    path = tmp / rng.choice(["view.pth", "view_legacy.pth"])
    torch.save({"conv1.weight": view}, path, _use_new_zipfile_serialization=path.name == "view.pth")
    return f"strides {_read_with_a_command(rng, path, tmp, seeds)}"


def case_amplify(rng, seeds, tmp) -> str:
    what = rng.choice(["codecs", "reconstruct", "setstate", "bytes8", "zip bomb", "scalar"])
    if what == "codecs":
        body = _s("a" * rng.randint(1, 100))
        for _ in range(rng.randint(1, 40)):
            enc = rng.choice(["hex", "base64", "latin1", "utf-16", "zlib", "rot13", "uu"])
            body = _s("_codecs") + _s("encode") + b"\x93" + body + _s(enc) + b"\x86R"
        path, where = _write_pickle(rng, tmp, body)
    elif what == "reconstruct":
        shape = b"J" + struct.pack("<i", rng.choice([2**20, 2**29, 2**31 - 1])) + b"\x85"
        dt = rng.choice(["O", "f8", "V1000", "U100", "f16", "c16", "b", "M8"])
        mod = rng.choice(["numpy.core.multiarray", "numpy._core.multiarray"])
        body = _s(mod) + _s("_reconstruct") + b"\x93" + _s("numpy") + _s("ndarray") + b"\x93" + shape + _s(dt) + b"\x87R"
        path, where = _write_pickle(rng, tmp, body)
    elif what == "setstate":
        n = rng.choice([2**20, 2**29])
        arr = (_s("numpy.core.multiarray") + _s("_reconstruct") + b"\x93" + _s("numpy") + _s("ndarray") + b"\x93"
               + b"K\x00\x85" + _s("b") + b"\x87R")
        state = (b"(K\x01J" + struct.pack("<i", n) + b"\x85" + _s("numpy") + _s("dtype") + b"\x93"
                 + _s(rng.choice(["f4", "O", "f8"])) + b"\x85R" + b"\x89" + _s("x" * rng.randint(0, 64)) + b"tb")
        path, where = _write_pickle(rng, tmp, arr + state)
    elif what == "bytes8":
        op = rng.choice([b"\x8e" + struct.pack("<Q", 2**rng.randint(30, 62)),  # BINBYTES8
                         b"\x8d" + struct.pack("<Q", 2**rng.randint(30, 62)),  # BINUNICODE8
                         b"B" + struct.pack("<I", 2**31 - 1)])  # BINBYTES
        path, where = _write_pickle(rng, tmp, op + b"abc")
    elif what == "scalar":
        body = (_s("numpy.core.multiarray") + _s("scalar") + b"\x93" + _s("numpy") + _s("dtype") + b"\x93"
                + _s(rng.choice(["O", "f8", "f16"])) + b"\x85R" + _s("x" * 8) + b"\x86R")
        path, where = _write_pickle(rng, tmp, body)
    else:
        where = "zip"
        path = tmp / "bomb.pth"
        inner = pickle.dumps({"w": "x"}, protocol=2)
        _torch_zip(path, inner + bytes(rng.choice([2**20, 16 * 2**20, 64 * 2**20])), compress=True)
    return f"amplify {what} {where} {_read_with_a_command(rng, path, tmp, seeds)}"


def _verdict(fn) -> str:
    try:
        fn()
        return "read"
    except Inflate3dError:
        return "refused"


def case_readers(rng, seeds, tmp) -> str:
    """One verdict from every safetensors reader, and never more lenient than the library."""
    from safetensors import safe_open

    raw = bytearray(seeds["safetensors"].read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    names = [k for k in header if k != "__metadata__"]
    edit = rng.choice(["offsets", "shape", "dtype", "metadata", "duplicate", "trailing", "bytes", "swap"])
    k = rng.choice(names)
    if edit == "offsets":
        header[k]["data_offsets"][rng.randrange(2)] += rng.choice([-8, -4, -1, 1, 4, 8, 10**6])
    elif edit == "shape":
        header[k]["shape"] = rng.choice([[True], [-1], [0], [2**40], header[k]["shape"] + [1], [1.0], ["2"]])
    elif edit == "dtype":
        header[k]["dtype"] = rng.choice(["F64", "I8", "C64", "F8_E4M3", "bool", None])
    elif edit == "metadata":
        header["__metadata__"] = rng.choice([{"x": [1]}, {"x": 1}, [], "s", {"x": "y"}, None])
    elif edit == "swap":
        a, b = rng.sample(names, 2)
        header[a]["data_offsets"], header[b]["data_offsets"] = header[b]["data_offsets"], header[a]["data_offsets"]
    text = json.dumps(header)
    if edit == "duplicate":
        text = text[:-1] + ", " + json.dumps(k) + ": " + json.dumps(header[k]) + "}"
    body = bytes(raw[8 + n:])
    if edit == "trailing":
        body += bytes(rng.randint(1, 16))
    data = bytearray(struct.pack("<Q", len(text)) + text.encode() + body)
    if edit == "bytes":
        data = bytearray(mutate(bytes(data), rng))
    path = tmp / "case.safetensors"
    path.write_bytes(bytes(data))

    def library():
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    f.get_tensor(key)
        except Exception as e:  # noqa: BLE001 - the library's own verdict
            raise Inflate3dError(str(e)) from None

    def lazy():
        with TensorFile(path) as tf:
            for key in tf.keys():
                tf.get(key)

    ours = {name: _verdict(fn) for name, fn in (("loader", lambda: load_checkpoint(path)), ("lazy", lazy),
                                                  ("header", lambda: read_header(path)))}
    if len(set(ours.values())) > 1:
        raise Bad("crash", f"readers disagree on a {edit} edit: {ours}")
    if _verdict(library) == "refused" and ours["loader"] == "read" and path.read_bytes()[8:9] == b"{":
        raise Bad("crash", f"the safetensors library refuses a {edit} edit that inflate3d reads")
    if ours["loader"] == "refused" and edit != "bytes":
        run_cli(["diff", path, seeds["safetensors"]])
    return f"readers {edit} {ours['loader']}"


# ---- interrupts ------------------------------------------------------------------------------

REFERENCE: dict[str, bytes] = {}
_VERDICTS = -1  # a child's end of the pipe to the harness


def case_signals(rng, seeds, tmp) -> str:
    """Interrupt a convert; whatever the moment, the exit code says what is on disk."""
    import inflate3d.io.save as save
    from inflate3d.cli import _install_signal_handlers

    fmt = rng.choice(["safetensors", "pth", "pkl"])
    out = tmp / "out" / f"out.{fmt}"
    out.parent.mkdir(exist_ok=True)
    sig = rng.choice([signal.SIGINT, signal.SIGTERM])
    when = rng.choice(["random", "random", "double", "double", "before commit", "after commit"])
    import inflate3d.cli as cli

    running = mmap.mmap(-1, 1)  # shared with the signalling process: 0 before, 1 during, 2 after the command
    real_exit, install = sys.exit, cli._install_signal_handlers
    cli._install_signal_handlers = lambda: (install(), running.__setitem__(0, 1))
    sys.exit = lambda code=0: (running.__setitem__(0, 2), real_exit(code))
    if when == "after commit":
        fsync_dir = save._fsync_dir
        save._fsync_dir = lambda folder: (os.kill(os.getpid(), sig), fsync_dir(folder))
    elif when == "before commit":
        fsync = os.fsync
        os.fsync = lambda fd: (fsync(fd), os.kill(os.getpid(), sig))
    else:  # from another process, once or twice 20 ms apart, at a random moment of the run
        delays = [rng.uniform(0, 0.4)] + ([0.02] if when == "double" else [])
        if os.fork() == 0:
            os.close(_VERDICTS)  # never hold the harness's pipe open
            give_up = time.monotonic() + 60
            while not running[0] and time.monotonic() < give_up:  # a starved process may miss it all
                time.sleep(0.001)
            for d in delays:
                time.sleep(d)
                if running[0] == 1:
                    os.kill(os.getppid(), sig)
            os._exit(0)
    try:
        code = run_cli(["convert", seeds["safetensors"], "-o", out, *fmt_args(fmt)], out, interrupted=True)
    except KeyboardInterrupt:
        if running[0] != 1:
            return f"signals {when}: landed after the command had finished"
        raise Bad("crash", f"KeyboardInterrupt escaped the CLI ({when})") from None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    if code == 0:
        if not out.exists() or out.read_bytes() != REFERENCE[fmt]:
            raise Bad("partial", f"exit 0 ({when}) but {out.name} is {'incomplete' if out.exists() else 'missing'}")
    elif code in (130, 143):
        if out.exists():
            raise Bad("partial", f"exit {code} ({when}, 'nothing was written') but the complete file is there")
        if when == "after commit":
            raise Bad("partial", "a signal after the commit reported nothing written")
    else:
        raise Bad("crash", f"exit {code} for an interrupted convert ({when})")
    return f"signals {when} exit {code}"


# ---- the harness -----------------------------------------------------------------------------

def run_case(kind: str, rng: random.Random, seeds, native, tmp: Path) -> tuple[str, str]:
    warnings.simplefilter("ignore")
    try:
        if kind == "file":
            what = case_file(rng, seeds, tmp)
        elif kind == "keys":
            what = case_keys(rng, native)
        else:
            what = globals()[f"case_{kind}"](rng, seeds, tmp)
        return "ok", what
    except Inflate3dError as e:
        if "MemoryError" in str(e) or "can't allocate memory" in str(e):
            return "blow-up", str(e)[:300]
        return "ok", f"{kind}: refused"
    except Bad as e:
        return e.args[0], f"{kind}: {e.args[1]}"
    except Exception as e:  # noqa: BLE001 - the point is to catch everything
        where = traceback.extract_tb(e.__traceback__)
        origin = next((f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}" for f in reversed(where)
                       if "inflate3d" in f.filename), "?")
        outcome = "blow-up" if isinstance(e, MemoryError) else "crash"
        return outcome, f"{kind}: {type(e).__name__} at {origin}: {e}".splitlines()[0][:300]


def in_children(cases: list[tuple[str, int]], seeds, native, tmp: Path, data_limit: int, timeout: int):
    """Yield (outcome, detail, peak MiB) per case, running the cases in forked children, many per
    child (a fork per case would cost more than most cases). A child reports each case as it
    finishes, with its running peak RSS (so each case's peak is at most the figure given). A case
    that kills its child, or is silent for ``timeout`` seconds, is that case's finding; the next
    child goes on with the case after it."""
    import select

    i = 0
    while i < len(cases):
        batch = cases[i:i + (1 if cases[i][0] == "signals" else 25)]
        batch = batch[:next((j for j, c in enumerate(batch) if c[0] == "signals" and j), len(batch))]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            global _VERDICTS
            _VERDICTS = w
            try:
                resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for n, (kind, case_seed) in enumerate(batch):
                    case_dir = tmp / f"case{n}"
                    case_dir.mkdir()
                    outcome, detail = run_case(kind, random.Random(case_seed), seeds, native, case_dir)
                    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                    os.write(w, (json.dumps([outcome, detail, peak]) + "\n").encode())
                os._exit(0)
            except BaseException as e:  # noqa: BLE001 - report, never fall back into the parent's loop
                os.write(w, (json.dumps(["crash", f"harness: {type(e).__name__}: {e}"[:300], 0]) + "\n").encode())
                os._exit(1)
        os.close(w)
        buf, done, last, cpu_last = b"", 0, time.monotonic(), 0.0
        hung = ""
        while True:
            ready, _, _ = select.select([r], [], [], 0.5)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    outcome, detail, peak = json.loads(line)
                    if outcome == "ok" and peak > PEAK_LIMIT_MIB:
                        outcome, detail = "blow-up", f"{detail}: peak {peak:.0f} MiB"
                    yield outcome, detail, peak, tmp / f"case{done}"
                    done, last, cpu_last = done + 1, time.monotonic(), _cpu_seconds(pid)
            else:  # a hang: CPU time spent on one case (the machine is shared: wall time is not
                # the case's own), or a case stuck without using the CPU at all
                cpu = _cpu_seconds(pid) - cpu_last
                if cpu > timeout or time.monotonic() - last > WALL_LIMIT:
                    hung = f"{cpu:.0f} s of CPU, {time.monotonic() - last:.0f} s of wall time"
                    os.kill(pid, signal.SIGKILL)
                    break
        os.close(r)
        _, status, rusage = os.wait4(pid, 0)
        if done < len(batch):  # the case that stopped the child
            kind = batch[done][0]
            peak = rusage.ru_maxrss / 1024
            if hung:
                yield "hang", f"{kind}: no verdict after {hung}", peak, tmp / f"case{done}"
            elif os.WIFSIGNALED(status):
                yield "crash", f"{kind}: killed by signal {os.WTERMSIG(status)}", peak, tmp / f"case{done}"
            else:
                yield "crash", f"{kind}: the child exited {os.WEXITSTATUS(status)} without a verdict", peak, \
                    tmp / f"case{done}"
            done += 1
        for n in range(len(batch)):
            _rmtree(tmp / f"case{n}")
        i += done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=20, help="CPU seconds per case before it is a hang")
    ap.add_argument("--progress", type=int, default=0, help="print a line every N cases")
    ap.add_argument("--kinds", default=",".join(k for k, _ in KINDS), help="comma-separated case kinds")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    kinds = [k for k, _ in KINDS if k in args.kinds.split(",")]
    weights = [w for k, w in KINDS if k in kinds]
    outcome: collections.Counter = collections.Counter()
    by_kind: collections.Counter = collections.Counter()
    findings: dict[tuple[str, str], int] = {}
    peaks: list[float] = []
    native = {k: torch.empty(v.shape, device="meta") for k, v in
              build_model("slowonly_r18", num_classes=3, device="meta", init=False).state_dict().items()}
    data_limit = int(_vm_data() + PEAK_LIMIT_MIB * 2**20)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inflate3d-fuzz-") as d:
        tmp = Path(d)
        marker = tmp / "marker"
        (tmp / "seeds").mkdir()
        seeds = seed_files(tmp / "seeds", marker)
        for fmt in ("safetensors", "pth", "pkl"):  # what an uninterrupted convert writes
            from click.testing import CliRunner

            from inflate3d.cli import main as cli_main

            ref = tmp / f"reference.{fmt}"
            CliRunner().invoke(cli_main, ["convert", str(seeds["safetensors"]), "-o", str(ref), *fmt_args(fmt)])
            REFERENCE[fmt] = ref.read_bytes()
        cases = []
        for _ in range(args.cases):
            cases.append((rng.choices(kinds, weights)[0], rng.getrandbits(64)))
        work = tmp / "work"
        work.mkdir()
        for i, (result, detail, peak, case_dir) in enumerate(in_children(cases, seeds, native, work, data_limit,
                                                                          args.timeout)):
            kind = cases[i][0]
            if marker.exists():
                result, detail = "code run", f"{kind}: {detail}: the payload's marker file appeared"
                marker.unlink()
            peaks.append(peak)
            outcome[result] += 1
            by_kind[kind] += 1
            if result != "ok":
                first = findings.setdefault((result, detail[:120]), i)
                if first == i:
                    print(f"{result}: case {i}: {detail}", flush=True)
                    keep = ROOT / "benchmarks" / "results" / f"fuzz_{result.replace(' ', '_')}_{args.seed}_{i}"
                    keep.mkdir(parents=True, exist_ok=True)
                    for p in case_dir.rglob("*"):
                        if p.is_file() and p.stat().st_size < 2**24:
                            (keep / p.name).write_bytes(p.read_bytes())
            if args.progress and (i + 1) % args.progress == 0:
                print(f"... {i + 1} cases, {time.perf_counter() - t0:.0f} s, max peak {max(peaks):.0f} MiB, "
                      + ", ".join(f"{k} {v}" for k, v in outcome.items()), flush=True)
    elapsed = time.perf_counter() - t0
    peaks.sort()
    print(f"{args.cases} cases in {elapsed:.0f} s (seed {args.seed}); by kind: "
          + ", ".join(f"{k} {by_kind[k]}" for k in kinds))
    print(f"peak RSS per case: median {peaks[len(peaks) // 2]:.0f} MiB, max {peaks[-1]:.0f} MiB "
          f"(limit {PEAK_LIMIT_MIB} MiB)")
    print("| outcome | cases |\n|---|---|")
    for name in ("ok",) + BAD:
        print(f"| {name} | {outcome.get(name, 0)} |")
    return 1 if any(outcome[b] for b in BAD) else 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (0 if it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_data() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 2**30


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
