"""Fuzz inflate3d's loaders, scheme detector and architecture inference.

    .venv/bin/python scripts/fuzz.py [--cases 10000] [--seed 0]

Valid small checkpoints of every format (safetensors, torch zip, legacy torch pickle, Caffe2 .pkl)
are mutated (byte flips, truncations, insertions, header edits) and loaded; key sets and shapes are
perturbed and fed to the detector and the architecture inference; some cases run the CLI with an
output path. Each case runs under a time limit. A case may succeed or raise Inflate3dError; any
other exception is a crash, a time-out is a hang, and a failing CLI run that leaves a file behind
is a partial output. Prints a table; exits 1 if any of those three is not zero.
"""
from __future__ import annotations

import argparse
import collections
import pickle
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inflate3d.errors import Inflate3dError  # noqa: E402
from inflate3d.inflate.convert import convert, match_arch  # noqa: E402
from inflate3d.inflate.detect import detect_scheme, infer_arch  # noqa: E402
from inflate3d.io.lazy import TensorFile  # noqa: E402
from inflate3d.io.load import load_checkpoint  # noqa: E402
from inflate3d.slowfast import build_model  # noqa: E402


class Hang(Exception):
    pass


def _alarm(_s, _f):
    raise Hang()


def seed_files(d: Path) -> list[Path]:
    """Small valid files of every format, with real (slowonly_r18) native and Caffe2 names."""
    model = build_model("slowonly_r18", num_classes=3, init=False, base_channels=2)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    small = dict(list(sd.items())[:12])
    paths = []
    save_file(sd, str(d / "native.safetensors")); paths.append(d / "native.safetensors")
    torch.save({"state_dict": small}, d / "zip.pth"); paths.append(d / "zip.pth")
    torch.save(small, d / "legacy.pth", _use_new_zipfile_serialization=False); paths.append(d / "legacy.pth")
    c2 = convert(sd, source=None, target="caffe2", origin="seed").tensors
    with open(d / "c2.pkl", "wb") as f:
        pickle.dump({"blobs": {k: v.numpy() for k, v in list(c2.items())[:20]}}, f, protocol=2)
    paths.append(d / "c2.pkl")
    return paths


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
            b[rng.randrange(min(len(b), 512))] = rng.choice(b'0123456789{}[]":,-eE' + bytes([0, 0x80, 0xff]))
    else:
        start = rng.randrange(len(b))
        b[start:start + rng.randint(1, 64)] = bytes(min(64, len(b) - start))
    return bytes(b)


LAST: dict[str, object] = {}


def case_file(rng, seeds, tmp: Path):
    src = rng.choice(seeds)
    path = tmp / f"case{src.suffix}"
    path.write_bytes(mutate(src.read_bytes(), rng))
    what = rng.random()
    LAST.update(source=src.name, path=path, what=what)
    if what < 0.6:
        load_checkpoint(path)
    elif what < 0.8:
        tf = TensorFile(path)
        for k in tf.keys()[:5]:
            tf.get(k)
    else:  # through the CLI, with an output that must not appear on failure
        from click.testing import CliRunner

        from inflate3d.cli import main

        out = tmp / "out.safetensors"
        result = CliRunner().invoke(main, ["convert", str(path), "-o", str(out)])
        if result.exit_code not in (0, 1, 2) or (result.exception and not isinstance(result.exception, SystemExit)):
            raise RuntimeError(f"CLI crashed: {result.exception!r}")
        partial = result.exit_code != 0 and out.exists()
        out.unlink(missing_ok=True)
        if partial:
            keep = ROOT / "benchmarks" / "results" / f"fuzz_partial_{path.suffix.strip('.')}.bin"
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.write_bytes(path.read_bytes())
            print(f"partial: exit {result.exit_code}, {result.stderr.strip()[:200]} (input kept as {keep})")
            return "partial"
    return None


def case_keys(rng, native: dict[str, torch.Tensor]):
    keys = list(native)
    what = rng.random()
    if what < 0.3:  # random key soup for the detector
        parts = ["backbone", "cls_head", "s1", "pathway0_stem", "blocks", "0", "conv1_w", "t_", "layer1", "conv",
                 "weight", "bn", "multipathway_blocks", "fc", "res2_0_branch2a_w", "slow_path", "module"]
        soup = {".".join(rng.choice(parts) for _ in range(rng.randint(1, 5))): torch.zeros(1)
                for _ in range(rng.randint(0, 12))}
        detect_scheme(soup.keys(), "fuzz")
        return None
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
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=10, help="seconds per case")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    outcome: collections.Counter = collections.Counter()
    crashes: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    signal.signal(signal.SIGALRM, _alarm)
    native = {k: torch.empty(v.shape, device="meta") for k, v in
              build_model("slowonly_r18", num_classes=3, device="meta", init=False).state_dict().items()}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        seeds = seed_files(tmp)
        for i in range(args.cases):
            signal.alarm(args.timeout)
            kind = "file" if i % 3 else "keys"
            try:
                result = case_file(rng, seeds, tmp) if kind == "file" else case_keys(rng, native)
                outcome[result or "ok"] += 1
            except Inflate3dError:
                outcome["Inflate3dError"] += 1
            except Hang:
                outcome["hang"] += 1
                keep = ROOT / "benchmarks" / "results" / f"fuzz_hang_{args.seed}_{i}.bin"
                keep.parent.mkdir(parents=True, exist_ok=True)
                if kind == "file":
                    keep.write_bytes(Path(LAST["path"]).read_bytes())
                print(f"hang: case {i} ({kind}, from {LAST.get('source')}, mode {LAST.get('what', 0):.2f}) "
                      f"kept as {keep}")
            except Exception as e:  # noqa: BLE001 - the point is to catch everything
                outcome["crash"] += 1
                crashes.append(f"case {i} ({kind}): {type(e).__name__}: {e}".splitlines()[0][:200])
                where = traceback.extract_tb(e.__traceback__)
                origin = next((f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}" for f in reversed(where)
                               if "inflate3d" in f.filename), "?")
                seen.setdefault((type(e).__name__, origin), i)
            finally:
                signal.alarm(0)
    elapsed = time.perf_counter() - t0
    print(f"{args.cases} cases in {elapsed:.0f} s (seed {args.seed})")
    print("| outcome | cases |\n|---|---|")
    for name in ("ok", "Inflate3dError", "crash", "hang", "partial"):
        print(f"| {name} | {outcome.get(name, 0)} |")
    for (name, origin), first in seen.items():
        print(f"crash: {name} raised through {origin} (first in case {first})")
    return 1 if outcome["crash"] or outcome["hang"] or outcome["partial"] else 0


if __name__ == "__main__":
    sys.exit(main())
