"""The sliced comparison gives what whole-tensor float64 arithmetic gives."""
from __future__ import annotations

import math

import pytest
import torch

from inflate3d.diff.metrics import compare


def _reference(a, b, atol, rtol):
    a64, b64 = a.double().flatten(), b.double().flatten()
    d = (a64 - b64).abs()
    scale = max(float(a64.abs().max()), float(b64.abs().max()))
    cos = float(a64 @ b64) / (float(a64.norm()) * float(b64.norm()))
    return float(d.max()), float(d.max()) / scale, cos, bool((d <= atol + rtol * b64.abs()).all())


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float32), (torch.float16, torch.float32),
                                    (torch.bfloat16, torch.bfloat16)])
def test_slices_agree_with_whole_tensors(chunk, dtypes):
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(5, 3, 11, generator=g) * 3).to(dtypes[0])
    b = (a.float() + torch.randn(5, 3, 11, generator=g) * 1e-2).to(dtypes[1])
    for atol, rtol in ((0.0, 0.0), (2e-2, 0.0), (0.0, 1e-3), (1e-1, 1e-1)):
        got = compare("w", a, b, atol=atol, rtol=rtol, chunk=chunk)
        max_abs, max_rel, cos, equal = _reference(a, b, atol, rtol)
        assert got.max_abs == pytest.approx(max_abs, rel=1e-12) and got.max_rel == pytest.approx(max_rel, rel=1e-12)
        assert got.cosine == pytest.approx(cos, rel=1e-12) and got.equal == equal and got.numel == a.numel()


def test_one_changed_value_nan_and_exact_cases():
    a = torch.arange(1.0, 101.0)
    b = a.clone()
    b[63] *= 1.02  # a 2% error in one value
    d = compare("w", a, b, chunk=8)
    assert not d.equal and d.max_abs == pytest.approx(64 * 0.02, rel=1e-5) and d.max_rel == pytest.approx(d.max_abs / 100)
    assert compare("w", a, a.clone(), chunk=8).equal and compare("w", a, a.clone()).cosine == 1.0
    n = a.clone()
    n[5] = float("nan")
    got = compare("w", a, n, chunk=8)
    assert not got.equal and math.isnan(got.max_abs)
    counts = torch.tensor(7, dtype=torch.int64)
    assert compare("c", counts, torch.tensor(9)).max_abs == 2.0 and not compare("c", counts, torch.tensor(9)).equal
    assert compare("m", torch.tensor([True, False]), torch.tensor([True, False])).equal
