"""The cheap paths keep their guarantees: a source read once still records the file's and the
tensors' sha256; a read-back through one reused buffer still sees every tensor and every
difference; a built-in arch is found without importing the other families."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from inflate3d.errors import Inflate3dError
from inflate3d.inflate.sources import resolve_source, tensors_sha256
from inflate3d.io.lazy import SafetensorsFile
from inflate3d.io.load import BackgroundSha256, load_checkpoint, sha256_file
from inflate3d.io.proof import prove_file


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(3, 4, generator=g), "b.bias": torch.randn(7, generator=g).half(),
            "c.count": torch.tensor(5), "d.empty": torch.empty(0, 2), "e.flag": torch.tensor([True, False])}


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth", "w_legacy.pth"])
def test_a_file_read_once_records_both_digests(tmp_path, seeded, name):
    src = seeded(18)
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file(src.tensors, str(path))
    else:
        torch.save({"state_dict": src.tensors}, path, _use_new_zipfile_serialization="legacy" not in name)
    loaded = resolve_source(str(path))
    assert loaded.sha256 == sha256_file(path)
    assert loaded.tensors_sha256 == tensors_sha256(loaded.tensors) == src.tensors_sha256
    assert all(torch.equal(loaded.tensors[k], v) for k, v in src.tensors.items())


def test_safetensors_read_whole_hands_over_every_byte_in_order(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file(_tensors(), str(path), metadata={"x": "y"})
    seen = bytearray()
    with SafetensorsFile(path) as f:
        tensors = f.read_all(lambda b: seen.extend(bytes(b)))
    assert bytes(seen) == path.read_bytes()
    for k, v in _tensors().items():
        assert tensors[k].dtype == v.dtype and torch.equal(tensors[k], v)
    ckpt = load_checkpoint(path, digest=True)
    assert ckpt.sha256() == sha256_file(path) and ckpt.metadata == {"x": "y"}


def test_background_hash_reports_its_failure():
    h = BackgroundSha256()
    h.update(b"abc")
    h.update(object())  # not a buffer
    with pytest.raises(TypeError):
        h.hexdigest()
    ok = BackgroundSha256()
    ok.update(b"abc")
    import hashlib

    assert ok.hexdigest() == hashlib.sha256(b"abc").hexdigest() == ok.hexdigest()


def test_reading_into_one_buffer_gives_each_tensor(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file(_tensors(), str(path))
    with SafetensorsFile(path) as f:
        buf = torch.empty(f.max_nbytes(), dtype=torch.uint8)
        for k, v in _tensors().items():
            got = f.get(k, buf)
            assert got.dtype == v.dtype and got.shape == v.shape and torch.equal(got, v)
            assert torch.equal(f.get(k), v)


def test_a_proof_through_a_reused_buffer_still_finds_a_difference(tmp_path):
    """Each tensor read back is compared before the buffer is reused: a difference in any one of
    them (the last included, after the buffer held others) fails the proof."""
    path = tmp_path / "t.safetensors"
    tensors = _tensors()
    save_file(tensors, str(path))
    with SafetensorsFile(path) as f:
        order = list(f.header)  # the file's own order (safetensors sorts by alignment, then name)
    prove_file(path, [(k, tensors[k]) for k in order], origin="t")
    for name in order:
        if not tensors[name].numel():
            continue
        wrong = dict(tensors)
        wrong[name] = tensors[name].clone().reshape(-1)
        wrong[name][-1] = ~wrong[name][-1] if wrong[name].dtype == torch.bool else wrong[name][-1] + 1
        wrong[name] = wrong[name].reshape(tensors[name].shape)
        with pytest.raises(Inflate3dError, match=f"differ.*{name}"):
            prove_file(path, [(k, wrong[k]) for k in order], origin="t")


def test_a_builtin_arch_imports_no_other_family():
    code = ("import sys\nfrom inflate3d import families\nfrom inflate3d.slowfast.archs import get_arch\n"
            "for name in ('slowfast_r50_4x16', 'i3d_r50', 'tsm_r50', 'ircsn_r152', 'r2plus1d_r34'):\n"
            "    assert families.for_arch(get_arch(name)) is None, name\n"
            "print(sorted(m for m in sys.modules if m.endswith('.family')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_builtin_families_are_exactly_those_no_family_module_owns():
    from inflate3d import families
    from inflate3d.slowfast.archs import all_archs

    owned = {f for m in families.load_all() for f in m.ARCH_FAMILIES}
    assert {a.family for a in all_archs().values()} - owned == families.BUILTIN_ARCH_FAMILIES
    assert not owned & families.BUILTIN_ARCH_FAMILIES


def test_weights_on_one_thread_verification_on_all(tmp_path, r18_file, monkeypatch):
    """The work on weights runs with one intra-op thread (a busy machine's spinning threads cost
    more than the elementwise work); verification's forwards get every thread; the count is
    restored after the command."""
    from click.testing import CliRunner

    import importlib

    verify = importlib.import_module("inflate3d.verify")
    from inflate3d.cli import main
    from inflate3d.io import save

    seen = {}
    write, check = save.write_safetensors, verify.verify_inflated

    def spy_write(*a, **k):
        seen["write"] = torch.get_num_threads()
        return write(*a, **k)

    def spy_verify(*a, **k):
        seen["verify"] = torch.get_num_threads()
        return check(*a, **k)

    monkeypatch.setattr(save, "write_safetensors", spy_write)
    monkeypatch.setattr(verify, "verify_inflated", spy_verify)
    torch.set_num_threads(2)
    out = tmp_path / "o.safetensors"
    result = CliRunner().invoke(main, ["inflate", str(r18_file), "--arch", "i3d_r18", "-o", str(out),
                                       "--verify-size", "32"])
    assert result.exit_code == 0, result.output
    assert seen == {"write": 1, "verify": 2} and torch.get_num_threads() == 2


def test_a_proof_can_keep_what_it_read(tmp_path):
    """convert checks the tensors read back further (strict shapes, the round trip): the proof
    hands them over, each in memory of its own, so the file is read once."""
    path = tmp_path / "t.safetensors"
    tensors = _tensors()
    save_file(tensors, str(path))
    with SafetensorsFile(path) as f:
        order = list(f.header)
    kept: dict = {}
    prove_file(path, [(k, tensors[k]) for k in order], origin="t", keep=kept)
    assert list(kept) == order and all(torch.equal(kept[k], tensors[k]) for k in order)
    ptrs = [kept[k].untyped_storage().data_ptr() for k in order if kept[k].numel()]
    assert len(set(ptrs)) == len(ptrs)  # no reused buffer: each tensor stays what was read
