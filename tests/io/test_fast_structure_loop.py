"""The torch zip structure reader's fast loop (``io.torch_zip._fast_load``) against the full
structure unpickler it stands in for: the same objects for what ``torch.save`` writes, and, for
any bytes at all, the same answer or a fall back to the full machine."""
from __future__ import annotations

import io
import math
import random
import zipfile
from collections import OrderedDict

import pytest
import torch

from inflate3d.io import torch_zip
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


def test_mutated_pickles_get_the_full_unpickler_answer():
    """Seeded byte flips, cuts and insertions: wherever the fast loop answers, the full machine
    gives the same object; wherever it refuses, the full machine's answer or error stands."""
    base = _data_pkl(_checkpoint(0))
    rng = random.Random(0)
    answered = 0
    for _ in range(1500):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.6:
                data[i] = rng.randrange(256)
            elif kind < 0.8:
                del data[i:i + rng.randint(1, 8)]
            else:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        data = bytes(data)
        full = _outcome(_full, data)
        assert _outcome(torch_zip.load_structure, data) == full
        try:
            fast = _plain(torch_zip._fast_load(data))
        except Exception:  # noqa: BLE001 - not vouched for: covered by the line above
            continue
        answered += 1
        assert full == ("value", fast)
    assert answered > 100  # the loop answers most mutations of values, not just the pristine file
