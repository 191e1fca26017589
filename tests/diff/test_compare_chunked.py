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


def _inflated_reference(e, w3d, w2d):
    """diff --inflated's figures the whole-tensor way (float64 copies of whole tensors)."""
    from inflate3d.inflate.kernels import deflate_kernel, inflate_kernel, kernel_method

    pad_zero = None
    if w3d.dim() == 5:
        core = w3d[:, : w2d.shape[1]]
        if e.pad:
            pad_zero = not bool(w3d[:, w2d.shape[1]:].any())
        method = kernel_method(core)
        exact = bool(torch.equal(core, inflate_kernel(w2d.to(core.dtype), core.shape[2],
                                                      "mean" if method == "copy" else method)))
        back = deflate_kernel(core.double(), "center" if method == "center" else "mean")
    elif w3d.dim() == 2 and e.pad:
        pad_zero = not bool(w3d[:, : e.pad].any())
        back, method = w3d[:, e.pad:], "copy"
        exact = bool(torch.equal(back, w2d.to(back.dtype)))
    else:
        back, method = w3d, "copy"
        exact = bool(torch.equal(w3d, w2d.to(w3d.dtype)))
    d = back.double() - w2d.double()
    max_abs = float(d.abs().max()) if back.numel() else 0.0
    base = float(w2d.double().norm())
    rel = float(d.norm()) / base if base > 0 else (0.0 if float(d.norm()) == 0 else float("inf"))
    return method, exact and pad_zero is not False, max_abs, rel, pad_zero


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20])
def test_inflated_slices_agree_with_whole_tensors(chunk):
    from types import SimpleNamespace

    from inflate3d.diff.inflated import _compare
    from inflate3d.inflate.kernels import inflate_kernel, pad_in_channels

    g = torch.Generator().manual_seed(0)
    w2d = torch.randn(6, 4, 3, 3, generator=g)
    cases = []
    for method in ("mean", "center"):
        w3d = inflate_kernel(w2d, 3, method)
        moved = w3d + 0.01 * torch.randn(w3d.shape, generator=g)
        cases += [("exact " + method, 0, w3d, w2d), ("moved " + method, 0, moved, w2d),
                  ("padded " + method, 2, pad_in_channels(w3d, 2), w2d)]
    moved_pad = pad_in_channels(inflate_kernel(w2d, 3, "center"), 2)
    moved_pad[:, -1] += 1.0
    fc = torch.randn(5, 8, generator=g)
    cases += [("pad moved", 2, moved_pad, w2d), ("t=1", 0, w2d.unsqueeze(2).clone(), w2d),
              ("head", 3, torch.cat((torch.zeros(5, 3), fc), 1), fc),
              ("bn", 0, torch.arange(6.0) + 0.5, torch.arange(6.0)),
              ("counter", 0, torch.tensor(7), torch.tensor(5)), ("empty", 0, torch.zeros(0, 4), torch.zeros(0, 4))]
    for name, pad, w3d, src in cases:
        e = SimpleNamespace(key=name, source="src", pad=pad)
        got = _compare(e, w3d, src, chunk=chunk)
        method, exact, max_abs, rel, pad_zero = _inflated_reference(e, w3d, src)
        assert (got.method, got.exact, got.pad_zero) == (method, exact, pad_zero), name
        assert got.max_abs == pytest.approx(max_abs, rel=1e-12, abs=1e-15), name
        assert got.rel_change == pytest.approx(rel, rel=1e-9, abs=1e-15), name
