"""The torch zip structure reader's fast loop (``io.torch_zip._fast_load``) against the full
structure unpickler it stands in for: the same objects for what ``torch.save`` writes, and, for
any bytes at all, the same answer or a fall back to the full machine. The same for the runs of
whole entries it hands to ``io.pickle_runs``: the objects and memo the full unpickler makes, or a
refusal that leaves the bytes to the loop (a memo index reused, a shared storage, damage)."""
from __future__ import annotations

import io
import math
import pickletools
import random
import re
import struct
import zipfile
from collections import OrderedDict

import pytest
import torch

from inflate3d.io import pickle_runs, torch_zip
from inflate3d.io.structure import NeedsTorch
from inflate3d.io.structure_unpickler import StructureUnpickler


def _data_pkl(obj, **kw) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def _plain(o):
    """Comparable: shape records as tuples, containers with their types and order."""
    if isinstance(o, torch_zip._View):
        s = o.storage
        return ("view", s.dtype, s.key, s.numel, o.offset, o.shape, o.stride)
    if isinstance(o, torch_zip._StorageType):
        return ("storage type", o.dtype)
    if isinstance(o, dict):
        return (type(o).__name__, [(k, _plain(v)) for k, v in o.items()])
    if isinstance(o, (list, tuple)):
        return (type(o).__name__, [_plain(v) for v in o])
    if isinstance(o, float) and math.isnan(o):
        return "nan"
    return (type(o).__name__, o)


def _full(data: bytes):
    return StructureUnpickler(io.BytesIO(data)).load()


def _checkpoint(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv3d(3, 4, (3, 5, 5))
    return {"meta": {"epoch": 7, "lr": [0.1, 1e-3, float("inf"), float("nan")], "flags": (True, False, None),
                     "big": 2**70, "neg": -(2**33), "small_neg": -3, "mid": 40_000, "text": "caf\u00e9 \ud800 x" * 3,
                     "nested": {"a": [(1, 2, 3), (4, 5)], "b": {"c": ["d"]}}, 7: "int key"},
            "state_dict": OrderedDict([("conv.weight", torch.randn(4, 3, 3, 5, 5, generator=g)),
                                       ("conv.bias", torch.randn(4, generator=g).half()),
                                       ("bn.num_batches_tracked", torch.tensor(3)),
                                       ("view", torch.arange(24.0).reshape(4, 6)[:, ::2]),
                                       ("bf16", torch.ones(2, 2, dtype=torch.bfloat16)),
                                       ("mask", torch.zeros(3, dtype=torch.bool))]),
            "module": conv.state_dict(),  # with _metadata (BUILD on an OrderedDict)
            "param": torch.nn.Parameter(torch.ones(2)),
            "shared": [torch.ones(1)] * 2}


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fast_loop_reads_what_torch_save_writes_as_the_full_unpickler_does(seed):
    data = _data_pkl(_checkpoint(seed))
    fast = torch_zip._fast_load(data)  # it reads these itself, without falling back
    assert _plain(fast) == _plain(_full(data))
    assert isinstance(fast["state_dict"], OrderedDict) and fast["meta"][7] == "int key"
    assert fast["shared"][0] is fast["shared"][1]  # the memo: one object, as pickle has it


def test_a_large_state_dict_takes_the_fast_loop():
    model = torch.nn.Sequential(*[torch.nn.Conv2d(2, 2, 1) for _ in range(300)])  # memo indices > 255
    data = _data_pkl({"state_dict": model.state_dict()})
    assert _plain(torch_zip._fast_load(data)) == _plain(_full(data))


@pytest.mark.parametrize("payload, why", [
    (b"\x80\x02}X\x01\x00\x00\x00aK\x01\x85K\x02s.", None),  # {'a': (1,)}: read
    (b"\x80\x02}K\x01\x85K\x02s.", "SETITEM"),  # {(1,): 2}: a tuple key is never hashed
    (b"\x80\x02}(K\x01\x85K\x02u.", "SETITEMS"),
    (b"\x80\x02}(\x88K\x02u.", "SETITEMS"),  # {True: 2}: a bool is not a plain key either
    (b"\x80\x02]K\x01b.", "BUILD"),  # BUILD on a list
    (b"\x80\x02ccollections\nOrderedDict\n]K\x01K\x02\x86a\x85R.", None),  # OrderedDict(pairs): the full machine refuses
    (b"\x80\x02cbuiltins\neval\n.", None),  # a global outside the few: refused, by name
    (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.", "protocol 4"),  # frames: the full machine
    (b"\x80\x02X\x10\x00\x00\x00abc.", "truncated"),
    (b"\x80\x02K\x01", "no STOP"),
])
def test_what_the_fast_loop_does_not_vouch_for_goes_to_the_full_machine(payload, why):
    if why is None:
        try:
            expected = _plain(_full(payload))
        except NeedsTorch:
            with pytest.raises(NeedsTorch):
                torch_zip.load_structure(payload)
        else:
            assert _plain(torch_zip.load_structure(payload)) == expected
        return
    with pytest.raises(torch_zip._Unsupported, match=why):
        torch_zip._fast_load(payload)


def _outcome(fn, data):
    try:
        return "value", _plain(fn(data))
    except RecursionError:
        return "value", "too deep to compare"
    except Exception as e:  # noqa: BLE001 - any refusal: the caller turns it into NeedsTorch
        return "error", type(e).__name__ if isinstance(e, NeedsTorch) else "error"


def _mutated(base: bytes, rng: random.Random, *, edits: int, start: int = 0) -> bytes:
    """``base`` with 1 to ``edits`` seeded byte flips, cuts or insertions at or after ``start``."""
    data = bytearray(base)
    for _ in range(rng.randint(1, edits)):
        i = rng.randrange(start, len(data))
        kind = rng.random()
        if kind < 0.6:
            data[i] = rng.randrange(256)
        elif kind < 0.8:
            del data[i:i + rng.randint(1, 8)]
        else:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(data)


def test_mutated_pickles_get_the_full_unpickler_answer():
    """Seeded byte flips, cuts and insertions: wherever the fast loop answers, the full machine
    gives the same object; wherever it refuses, the full machine's answer or error stands."""
    base = _data_pkl(_checkpoint(0))
    rng = random.Random(0)
    answered = 0
    for _ in range(1500):
        data = _mutated(base, rng, edits=3)
        full = _outcome(_full, data)
        assert _outcome(torch_zip.load_structure, data) == full
        try:
            fast = _plain(torch_zip._fast_load(data))
        except Exception:  # noqa: BLE001 - not vouched for: covered by the line above
            continue
        answered += 1
        assert full == ("value", fast)
    assert answered > 100  # the loop answers most mutations of values, not just the pristine file


# --- runs of whole entries (io.pickle_runs) ---------------------------------------------------

def _state_dict(blocks: int = 60) -> OrderedDict:
    """A module's state dict with what real ones hold: 5-D kernels, BN buffers (int64 scalars),
    half and bool tensors, a transposed view, and names with 'r', 'q', 'X' and non-ASCII letters."""
    g = torch.Generator().manual_seed(5)
    layers = []
    for i in range(blocks):
        layers += [torch.nn.Conv3d(2 + i % 3, 3, (1 + i % 2, 3, 3)), torch.nn.BatchNorm3d(3)]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    sd = model.state_dict()
    sd["head.qkv_X.wéight"] = torch.randn(4, 6, generator=g).t()  # strides (1, 6)
    sd["head.half"] = torch.randn(5, generator=g).half()
    sd["head.mask"] = torch.zeros(3, dtype=torch.bool)
    sd["head.big"] = torch.randn(70_000, generator=g)  # a size written with BININT
    return sd


def _spy(monkeypatch) -> list[tuple[int, int]]:
    """(where, how many entries) for each run taken (the real ``read``, counted)."""
    taken: list[tuple[int, int]] = []
    real = pickle_runs.read

    def counted(*args):
        items, end = real(*args)
        if items is not None:
            taken.append((args[1], len(items) // 2))
        return items, end
    monkeypatch.setattr(pickle_runs, "read", counted)
    return taken


def test_runs_read_a_large_state_dict_as_the_full_unpickler_does(monkeypatch):
    sd = _state_dict()
    data = _data_pkl({"state_dict": sd, "meta": {"epoch": 3}})
    taken = _spy(monkeypatch)
    fast = torch_zip._fast_load(data)
    assert _plain(fast) == _plain(_full(data))
    assert list(fast["state_dict"]) == list(sd)
    assert sum(n for _, n in taken) > 0.9 * len(sd) + 100  # the tensors and the _metadata lines: nearly all of it
    view = fast["state_dict"]["head.qkv_X.wéight"]
    assert (view.shape, view.stride, view.storage.dtype) == ((6, 4), (1, 6), "float32")
    assert fast["state_dict"]["head.big"].shape == (70_000,)


def test_an_object_a_run_put_in_the_memo_is_the_same_object_when_fetched_again():
    sd = _state_dict()
    last = list(sd)[-5]
    data = _data_pkl({"state_dict": sd, "again": [sd[last], sd["0.weight"]]})  # memo GETs of run entries
    fast = torch_zip._fast_load(data)
    assert _plain(fast) == _plain(_full(data))
    assert fast["again"][0] is fast["state_dict"][last]
    assert fast["again"][1] is fast["state_dict"]["0.weight"]


def test_shared_storages_are_left_to_the_loop_and_read_alike():
    sd = _state_dict()
    base = torch.arange(24.0)
    for i in range(40):  # views of one storage: the storage key is a memo GET, which no run takes
        sd[f"shared.{i}"] = base[i % 4:i % 4 + 8].view(2, 4)
    data = _data_pkl({"state_dict": sd})
    fast = torch_zip._fast_load(data)
    assert _plain(fast) == _plain(_full(data))
    keys = {fast["state_dict"][f"shared.{i}"].storage.key for i in range(40)}
    assert len(keys) == 1


def _put_indices(data: bytes) -> list[int]:
    """Where each LONG_BINPUT's index lies in a torch.save pickle (from the opcode stream)."""
    return [pos + 1 for op, _, pos in pickletools.genops(data) if op.name == "LONG_BINPUT"]


def _with_tail(data: bytes, value: bytes) -> bytes:
    """The pickle of a dict with one more item, 'tail': ``value`` (opcodes), set before STOP."""
    assert data.endswith(b".")
    return data[:-1] + b"X\x04\x00\x00\x00tail" + value + b"s."


def _renumbered(data: bytes, after: int, first: int) -> tuple[bytes, dict[int, int]]:
    """``data`` with the memo indices of every LONG_BINPUT past byte ``after`` renumbered from
    ``first`` on (still consecutive), and the LONG_BINGETs of those indices with them."""
    out, new = bytearray(data), {}
    for op, arg, pos in pickletools.genops(data):
        if pos > after and op.name == "LONG_BINPUT":
            new[arg] = first + len(new)
            out[pos + 1:pos + 5] = struct.pack("<I", new[arg])
        elif pos > after and op.name == "LONG_BINGET" and arg in new:
            out[pos + 1:pos + 5] = struct.pack("<I", new[arg])
    return bytes(out), new


def test_a_run_whose_memo_indices_are_taken_is_left_to_the_loop(monkeypatch):
    """The _metadata lines renumbered onto the memo indices the tensors' run wrote: consecutive, but
    overwriting. The loop must read them (a run would have its entries lose to the tensors' when
    the memo is made), so a later GET of such an index gets the _metadata object, as in pickle."""
    sd = _state_dict()
    data = _data_pkl({"state_dict": sd})
    first = struct.unpack("<I", data[_put_indices(data)[0]:][:4])[0]
    data, new = _renumbered(data, data.index(b"_metadata"), first)
    overlapped, tensor_only = first + 10, first + len(new) + 50
    data = _with_tail(data, b"](j" + struct.pack("<I", overlapped) + b"j" + struct.pack("<I", tensor_only) + b"e")
    taken = _spy(monkeypatch)
    fast = torch_zip._fast_load(data)
    assert _plain(fast) == _plain(_full(data))
    assert taken and all(at < data.index(b"_metadata") for at, _ in taken)  # runs of tensors alone
    assert fast["tail"][0] == {"version": 1}  # a _metadata line's, not the tensors' object at that index
    assert fast["tail"][1][0] == "storage"  # a storage reference, made when the memo was


def test_mutated_large_pickles_get_the_full_unpickler_answer():
    """Seeded byte flips, cuts and insertions in the part the runs read: the same object or the
    same refusal as the full machine, every time."""
    base = _data_pkl({"state_dict": _state_dict(blocks=40)})
    start = _put_indices(base)[0]  # where the LONG_BINPUT entries (the runs) begin
    rng = random.Random(1)
    for _ in range(150):
        data = _mutated(base, rng, edits=2, start=start)
        assert _outcome(torch_zip.load_structure, data) == _outcome(_full, data)


def test_a_later_put_over_a_run_index_wins_over_the_run():
    """After the runs, one of their memo indices is put again ('y'), then another of their indices
    is fetched (which makes the runs' memo entries), then the first again: 'y' stands, as in pickle."""
    sd = _state_dict()
    data = _data_pkl({"state_dict": sd})
    puts = _put_indices(data)
    reused = struct.unpack("<I", data[puts[400]:puts[400] + 4])[0]
    name = list(sd)[100].encode()
    key_put = data.index(b"X" + struct.pack("<I", len(name)) + name) + 5 + len(name) + 1  # put by a run
    other = struct.unpack("<I", data[key_put:key_put + 4])[0]
    tail = (b"](X\x01\x00\x00\x00yr" + struct.pack("<I", reused) + b"j" + struct.pack("<I", other)
            + b"j" + struct.pack("<I", reused) + b"e")
    data = _with_tail(data, tail)
    fast = torch_zip._fast_load(data)
    assert _plain(fast) == _plain(_full(data))
    assert fast["tail"] == ["y", list(sd)[100], "y"]


def _entry_at(data: bytes, index: int) -> re.Match:
    """The first match of the tensor entry pattern from the ``index``-th on with a size and stride
    (not a scalar's EMPTY_TUPLE)."""
    return next(m for m in list(pickle_runs.TENSOR.finditer(data))[index:] if m.group(14) and m.group(16))


def test_a_memo_index_put_twice_in_a_run_keeps_the_later_object():
    """Two entries' keys put at one index (the run's indices are no longer consecutive): the
    loop reads them, and a GET of that index after the run gets the second key, as in pickle."""
    sd = _state_dict()
    data = bytearray(_data_pkl({"state_dict": sd}))
    a, b = list(pickle_runs.TENSOR.finditer(bytes(data)))[100:102]  # two entries in a row
    assert a.group(2) != b.group(2) and a.end() == b.start()
    data[b.start(3):b.end(3)] = data[a.start(3):a.end(3)]
    data = _with_tail(bytes(data), b"](j" + data[a.start(3):a.end(3)] + b"e")
    fast = torch_zip._fast_load(data)
    assert _plain(fast) == _plain(_full(data))
    assert fast["tail"] == [b.group(2).decode()]


def test_a_negative_storage_size_is_refused_as_the_full_machine_refuses_it():
    data = bytes(_data_pkl({"state_dict": _state_dict()}))
    m = _entry_at(data, 100)
    data = data[:m.start(11)] + b"J" + struct.pack("<i", -5) + data[m.end(11):]
    assert _outcome(torch_zip.load_structure, data) == _outcome(_full, data) == ("error", "NeedsTorch")


def test_a_size_of_more_dimensions_than_any_checkpoint_is_refused_as_the_full_machine_refuses_it():
    data = bytes(_data_pkl({"state_dict": _state_dict()}))
    m = _entry_at(data, 100)
    many = b"(" + b"K\x01" * (torch_zip.MAX_DIMS + 1) + b"t"
    data = data[:m.start(14)] + many + data[m.end(14):m.start(16)] + many + data[m.end(16):]
    assert _outcome(torch_zip.load_structure, data) == _outcome(_full, data) == ("error", "NeedsTorch")


@pytest.mark.parametrize("edit", ["rebuilder", "arity"])
def test_an_entry_unlike_the_others_leaves_the_run_to_the_loop(edit):
    """One entry of a run calls something else than torch's rebuilder (the memo's 'cpu'), or
    writes its size as two ints and TUPLE1: refused by the full machine, and so by the runs."""
    data = bytes(_data_pkl({"state_dict": _state_dict()}))
    m = _entry_at(data, 100)
    if edit == "rebuilder":
        data = data[:m.start(4)] + m.group(10) + data[m.end(4):]
    else:
        two = b"K\x02K\x03\x85"  # for size and stride alike: of one length, as a tensor's must be
        data = data[:m.start(14)] + two + data[m.end(14):m.start(16)] + two + data[m.end(16):]
    assert _outcome(torch_zip.load_structure, data) == _outcome(_full, data)
    assert _outcome(_full, data)[0] == "error"
