"""A safetensors source read on a thread while torch imports (``io.prefetch``) gives exactly what
the loader gives: the same tensors bit for bit (every dtype, odd offsets), the file's sha256 and
the tensors' digest; anything it cannot vouch for (another format, a bad header, a file replaced
after it was read) is left to the loader, whose answer and errors are unchanged."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from inflate3d.errors import Inflate3dError
from inflate3d.inflate.sources import resolve_source, tensors_sha256
from inflate3d.io.load import load_checkpoint
from inflate3d.io.prefetch import Prefetch
from inflate3d.io.proof import bit_equal
from inflate3d.io.save import write_pth, write_safetensors


def _every_dtype() -> dict[str, torch.Tensor]:
    """Distinct values in every dtype safetensors has; a 3-byte tensor first, so the float32 after
    it starts at an offset that is not a multiple of 4 in the file."""
    g = torch.Generator().manual_seed(3)
    f = torch.randn(2, 3, generator=g)
    return {"a.odd": torch.tensor([7, 8, 9], dtype=torch.uint8), "b.f32": f,
            "c.f64": f.double() * 3, "d.f16": (f * 5).half(), "e.bf16": (f * 7).bfloat16(),
            "f.i64": torch.arange(5) * 11, "g.i32": torch.arange(4, dtype=torch.int32) - 2,
            "h.i16": torch.arange(3, dtype=torch.int16) * 300, "i.i8": torch.tensor([-5, 6], dtype=torch.int8),
            "j.bool": torch.tensor([True, False, True]), "k.scalar": torch.tensor(2.5), "l.empty": torch.empty(0, 4)}


def _write(path, tensors, metadata=None):
    """In this order (the safetensors library would reorder them by dtype)."""
    with open(path, "wb") as f:
        write_safetensors(f, [(k, tuple(v.shape), v.dtype) for k, v in tensors.items()], tensors.items(),
                          metadata or {})


def test_prefetched_equals_loaded_for_every_dtype_and_odd_offsets(tmp_path):
    path = tmp_path / "all.safetensors"
    tensors = _every_dtype()
    _write(path, tensors, {"note": "kept"})
    plain = load_checkpoint(path, digest=True)
    got = load_checkpoint(path, digest=True, prefetched=Prefetch(path))
    assert got.tensors_sha256 is not None  # the prefetch did the work
    assert list(got.tensors) == list(plain.tensors) == list(tensors)
    assert all(bit_equal(got.tensors[k], plain.tensors[k]) and bit_equal(got.tensors[k], v) for k, v in tensors.items())
    assert got.metadata == plain.metadata == {"note": "kept"}
    assert got.sha256() == plain.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert got.tensors_sha256 == tensors_sha256(plain.tensors)
    # views of one buffer, but for tensors at offsets that do not suit their dtype (the float32 at 3)
    assert got.tensors["i.i8"].untyped_storage().data_ptr() == got.tensors["a.odd"].untyped_storage().data_ptr()
    assert got.tensors["b.f32"].untyped_storage().data_ptr() != got.tensors["a.odd"].untyped_storage().data_ptr()
    # the writers give each its own compact storage: a .pth holds each tensor's bytes once, no more
    with open(tmp_path / "saved.pth", "wb") as f:
        write_pth(f, got.tensors)
    again = torch.load(tmp_path / "saved.pth", weights_only=True)
    assert all(bit_equal(again[k], v) for k, v in tensors.items())
    assert sum(t.untyped_storage().nbytes() for t in again.values()) == sum(v.nbytes for v in tensors.values())


def test_a_wrapped_source_digests_under_the_names_the_loader_gives(tmp_path):
    path = tmp_path / "dp.safetensors"
    src = resolve_source("seeded:resnet18:0")
    save_file({f"module.{k}": v for k, v in src.tensors.items()}, str(path))
    got = resolve_source(str(path), prefetched=Prefetch(path))
    assert got.tensors_sha256 == src.tensors_sha256 == tensors_sha256(got.tensors)
    assert got.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and got.prefix == "module."
    assert all(torch.equal(got.tensors[k], v) for k, v in src.tensors.items())


def test_a_file_replaced_after_the_prefetch_is_read_again(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"x": torch.ones(4)}, str(path))
    early = Prefetch(path)
    early._thread.join()
    replacement = tmp_path / "new.safetensors"
    save_file({"x": torch.full((4,), 2.0), "y": torch.zeros(2)}, str(replacement))
    os.replace(replacement, path)
    got = load_checkpoint(path, digest=True, prefetched=early)
    assert got.tensors_sha256 is None  # the loader read it
    assert set(got.tensors) == {"x", "y"} and torch.equal(got.tensors["x"], torch.full((4,), 2.0))
    assert got.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["header", "truncated", "pth"])
def test_what_the_prefetch_cannot_read_is_the_loaders_to_report(tmp_path, damage):
    path = tmp_path / ("w.pth" if damage == "pth" else "w.safetensors")
    tensors = {"x": torch.arange(6.0)}
    if damage == "pth":
        torch.save(tensors, path)
    else:
        save_file(tensors, str(path))
        data = path.read_bytes()
        path.write_bytes(data[:8] + b"[" + data[9:] if damage == "header" else data[:-5])
    fetched = Prefetch(path)
    assert fetched.take() is None
    if damage == "pth":
        assert torch.equal(load_checkpoint(path, prefetched=Prefetch(path)).tensors["x"], tensors["x"])
        return
    with pytest.raises(Inflate3dError) as plain:
        load_checkpoint(path)
    with pytest.raises(Inflate3dError) as via_prefetch:
        load_checkpoint(path, prefetched=Prefetch(path))
    assert str(via_prefetch.value) == str(plain.value)


def test_inflate_reads_its_source_while_torch_imports(tmp_path):
    """The CLI starts the prefetch before importing torch, and the file it writes records the
    source's sha256 and digest: the same bytes as without a prefetch."""
    src = tmp_path / "r18.safetensors"
    save_file(resolve_source("seeded:resnet18:0").tensors, str(src))
    code = (
        "import sys, inflate3d.io.prefetch as p\n"
        "seen = []\n"
        "real = p.Prefetch.__init__\n"
        "def spy(self, path, **kw):\n"
        "    seen.append('torch' in sys.modules)\n"
        "    real(self, path, **kw)\n"
        "p.Prefetch.__init__ = spy\n"
        "from inflate3d.cli import main\n"
        "try:\n"
        f"    main([\"inflate\", {str(src)!r}, \"--arch\", \"i3d_r18\", \"-o\", {str(tmp_path / 'o.safetensors')!r},"
        " \"--no-verify\"])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "print(seen)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[False]"
    from inflate3d.io.safetensors_header import read_header

    _, meta, _ = read_header(tmp_path / "o.safetensors")
    plain = load_checkpoint(src)
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["source_tensors_sha256"] == tensors_sha256(plain.tensors)


def test_short_reads_are_resumed_where_they_stopped(tmp_path, monkeypatch):
    """A positioned read may return fewer bytes than asked (a signal, a network file system): the
    rest is read from where it stopped, into the right tensors."""
    import inflate3d.io.prefetch as prefetch

    path = tmp_path / "all.safetensors"
    tensors = _every_dtype()
    _write(path, tensors)
    real = os.preadv

    def at_most_5_bytes(fd, buffers, offset):
        first = buffers[0][:5]
        return real(fd, [first], offset)

    monkeypatch.setattr(prefetch.os, "preadv", at_most_5_bytes)
    fetched = Prefetch(path)
    fetched._thread.join()
    monkeypatch.undo()
    got = load_checkpoint(path, digest=True, prefetched=fetched)
    assert got.tensors_sha256 is not None
    assert all(bit_equal(got.tensors[k], v) for k, v in tensors.items())
    assert got.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
