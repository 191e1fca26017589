"""``write_proven``: a safetensors file proven from its bytes on disk while it is written. It must
write what ``write_safetensors`` writes, and fail (exit 1) on whatever the after-the-fact proof
fails on: a writer that puts wrong bytes in the file, bytes changed on disk before they are read
back, a header that does not say what was written."""
from __future__ import annotations

import pytest
import torch

import inflate3d.io.proof as proof
import inflate3d.io.save as save
from inflate3d.errors import CHECK_FAILED, Inflate3dError
from inflate3d.io.proof import bit_equal, write_proven
from inflate3d.io.save import write_safetensors


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    big = torch.randn(64, 32, 3, 3, generator=g)
    return {"conv.weight": big, "conv.t": big.transpose(0, 1),  # a strided view: written contiguous
            "bn.weight": torch.randn(64, generator=g).half(), "bn.num_batches_tracked": torch.tensor(9),
            "empty": torch.empty(0, 3), "flag": torch.tensor([True, False]), "fc.weight": torch.randn(10, 7, generator=g)}


def _specs(tensors):
    return [(k, tuple(v.shape), v.dtype) for k, v in tensors.items()]


def test_writes_what_write_safetensors_writes_and_hands_back_the_file(tmp_path):
    tensors, meta = _tensors(), {"arch": "x", "seed": "0"}
    plain = tmp_path / "plain.safetensors"
    with open(plain, "wb") as f:
        write_safetensors(f, _specs(tensors), tensors.items(), meta)
    out = tmp_path / "proven.safetensors"
    kept: dict = {}
    with open(out, "wb") as f:
        written = write_proven(f, _specs(tensors), tensors.items(), meta, origin="o", keep=kept)
    assert out.read_bytes() == plain.read_bytes()
    assert written.keys() == list(tensors) == list(kept) and written.metadata == meta
    assert all(bit_equal(kept[k], v.contiguous()) and bit_equal(written.get(k), v.contiguous())
               for k, v in tensors.items())
    # read once into one buffer: views of it, but for a tensor at an offset unfit for its dtype
    # (fc.weight, float32 after 2 bool bytes)
    ptr = kept["conv.weight"].untyped_storage().data_ptr()
    assert kept["bn.weight"].untyped_storage().data_ptr() == ptr != kept["fc.weight"].untyped_storage().data_ptr()


def test_a_writer_that_writes_wrong_bytes_is_caught(tmp_path, monkeypatch):
    """One value's bytes changed on the way to the file (a freed buffer, a wrong view): the read-back
    compares the file with the tensor itself, so it names that tensor."""
    real = save.tensor_bytes

    def lossy(t):
        raw = real(t)
        if t.numel() == 64 * 32 * 3 * 3 and t.is_contiguous():
            raw = bytearray(raw)
            raw[12345] ^= 0x10
            return memoryview(raw)
        return raw

    monkeypatch.setattr(save, "tensor_bytes", lossy)
    tensors = _tensors()
    with open(tmp_path / "o.safetensors", "wb") as f, pytest.raises(Inflate3dError) as e:
        write_proven(f, _specs(tensors), tensors.items(), {}, origin="out.safetensors")
    assert e.value.exit_code == CHECK_FAILED
    assert "1 tensors read back from the written file differ from what was written (conv.weight)" in str(e.value)


def test_bytes_changed_on_disk_before_they_are_read_back_are_caught(tmp_path, monkeypatch):
    real = proof._ReadBack.written

    def damage_then_queue(self, name, t, position, nbytes):
        if name == "fc.weight":
            with open(self.path, "r+b") as g:
                g.seek(position + 3)
                byte = g.read(1)
                g.seek(position + 3)
                g.write(bytes([byte[0] ^ 0x01]))
        return real(self, name, t, position, nbytes)

    monkeypatch.setattr(proof._ReadBack, "written", damage_then_queue)
    tensors = _tensors()
    with open(tmp_path / "o.safetensors", "wb") as f, pytest.raises(Inflate3dError, match=r"differ .*\(fc.weight\)"):
        write_proven(f, _specs(tensors), tensors.items(), {}, origin="o")


def test_a_header_that_does_not_say_what_was_written_is_caught(tmp_path, monkeypatch):
    """The tensors' bytes are right, but the header (written first) names another dtype for one of
    them: the header read back at the end must describe what was written, or the file fails."""
    real = save.safetensors_header
    tensors = _tensors()

    def lying(specs, metadata):
        return real([(k, s, torch.int32 if k == "fc.weight" else d) for k, s, d in specs], metadata)

    monkeypatch.setattr(save, "safetensors_header", lying)
    with open(tmp_path / "o.safetensors", "wb") as f, pytest.raises(Inflate3dError, match=r"fc.weight") as e:
        write_proven(f, _specs(tensors), tensors.items(), {}, origin="o")
    assert e.value.exit_code == CHECK_FAILED


def test_metadata_that_reads_back_otherwise_is_caught(tmp_path, monkeypatch):
    real = save.safetensors_header
    monkeypatch.setattr(save, "safetensors_header", lambda specs, metadata: real(specs, {**metadata, "k": "w"}))
    tensors = _tensors()
    with open(tmp_path / "o.safetensors", "wb") as f, pytest.raises(Inflate3dError, match="metadata read back"):
        write_proven(f, _specs(tensors), tensors.items(), {"k": "v"}, origin="o")


def test_tensors_waiting_for_the_read_back_stay_within_the_budget(tmp_path, monkeypatch):
    """The writer waits while the tensors not yet compared would exceed the budget (one tensor is
    always let through), so memory stays bounded however slow the reads are."""
    import time

    held = []
    real_same = proof._ReadBack._same

    def slow_same(self, *a):
        held.append(self._held)
        time.sleep(0.002)
        return real_same(self, *a)

    monkeypatch.setattr(proof._ReadBack, "_same", slow_same)
    real_init = proof._ReadBack.__init__
    monkeypatch.setattr(proof._ReadBack, "__init__",
                        lambda self, path, origin, keep, sizes, budget=0: real_init(self, path, origin, keep, sizes,
                                                                                   budget=1000))
    g = torch.Generator().manual_seed(0)
    tensors = {f"t{i}": torch.randn(60, generator=g) for i in range(30)}  # 240 bytes each
    with open(tmp_path / "o.safetensors", "wb") as f:
        written = write_proven(f, _specs(tensors), tensors.items(), {}, origin="o")
    assert written.keys() == list(tensors)
    assert max(held) <= 1000 and max(held) >= 240


def test_an_aborted_write_stops_the_reader(tmp_path):
    """A tensor that is not what the header declared aborts the write; the read-back thread is
    stopped, not left waiting."""
    import threading

    tensors = _tensors()
    specs = _specs(tensors)
    specs[2] = (specs[2][0], (65,), specs[2][2])
    with open(tmp_path / "o.safetensors", "wb") as f, pytest.raises(Inflate3dError, match="internal error"):
        write_proven(f, specs, tensors.items(), {}, origin="o")
    assert not [t for t in threading.enumerate() if t.name == "inflate3d-read-back"]


def test_no_tensors_is_a_header_proven_alone(tmp_path):
    with open(tmp_path / "o.safetensors", "wb") as f:
        written = write_proven(f, [], [], {"arch": "none"}, origin="o")
    assert written.keys() == [] and written.metadata == {"arch": "none"}
