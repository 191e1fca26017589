"""The tensor maths of inflation, as properties over random shapes and dtypes."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inflate3d.inflate.kernels import (deflate_kernel, inflate_kernel, pad_columns_front,
                                       pad_in_channels)

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 3, 7]), st.sampled_from([1, 3, 7]))
dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64])


def _w(shape, dtype, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, t=st.integers(1, 7), dtype=dtypes, seed=st.integers(0, 2**16))
def test_mean_is_bit_identical_to_mmaction2(shape, t, dtype, seed):
    w2d = _w(shape, dtype, seed)
    w3d = inflate_kernel(w2d, t, "mean")
    target = torch.empty(shape[0], shape[1], t, *shape[2:], dtype=dtype)
    assert w3d.dtype == dtype and w3d.is_contiguous()
    assert torch.equal(w3d, w2d.data.unsqueeze(2).expand_as(target) / t)  # mmaction2's expression


@settings(max_examples=60, deadline=None)
@given(shape=shapes, t=st.sampled_from([1, 3, 5, 7]), dtype=dtypes, seed=st.integers(0, 2**16))
def test_center_puts_the_kernel_in_the_centre_tap_only(shape, t, dtype, seed):
    w2d = _w(shape, dtype, seed)
    w3d = inflate_kernel(w2d, t, "center")
    c = (t - 1) // 2
    assert torch.equal(w3d[:, :, c], w2d)
    assert not w3d[:, :, :c].any() and not w3d[:, :, c + 1:].any()
    assert torch.equal(deflate_kernel(w3d, "center"), w2d)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, t=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_mean_deflates_back_to_the_2d_kernel(shape, t, seed):
    w2d = _w(shape, torch.float64, seed)
    torch.testing.assert_close(deflate_kernel(inflate_kernel(w2d, t, "mean"), "mean"), w2d)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, extra=st.integers(0, 5), dtype=dtypes, seed=st.integers(0, 2**16))
def test_pad_appends_zero_input_channels_at_the_end(shape, extra, dtype, seed):
    w = _w(shape, dtype, seed)
    p = pad_in_channels(w, extra)
    assert p.shape == (shape[0], shape[1] + extra, *shape[2:]) and p.dtype == dtype
    assert torch.equal(p[:, : shape[1]], w) and not p[:, shape[1]:].any()


def test_head_columns_are_prepended():
    w = torch.randn(4, 3)
    p = pad_columns_front(w, 2)
    assert torch.equal(p[:, 2:], w) and not p[:, :2].any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="4-D"):
        inflate_kernel(torch.zeros(2, 2, 2), 3)
    with pytest.raises(ValueError, match="unknown inflation method"):
        inflate_kernel(torch.zeros(1, 1, 1, 1), 3, "sum")
    with pytest.raises(ValueError, match=">= 1"):
        inflate_kernel(torch.zeros(1, 1, 1, 1), 0)
