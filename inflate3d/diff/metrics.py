"""How two tensors differ: pure functions of tensors, computed in float64."""
from __future__ import annotations

import math

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TensorDiff:
    key: str
    numel: int
    max_abs: float
    max_rel: float  # max |a - b| / max(max |a|, max |b|): relative to the tensor's scale
    cosine: float
    equal: bool  # |a - b| <= atol + rtol * |b| everywhere (exact when both are 0)


CHUNK = 1 << 20  # values per float64 slice: 8 MiB, never a float64 copy of a whole tensor


def compare(key: str, a: torch.Tensor, b: torch.Tensor, *, atol: float = 0.0, rtol: float = 0.0,
            chunk: int = CHUNK) -> TensorDiff:
    """One pass over slices of ``chunk`` values: the float64 work lives in one slice at a time.
    Bit-equal tensors (the common case when a conversion is checked) need no float64 at all."""
    a, b = a.detach().reshape(-1), b.detach().reshape(-1)
    n = a.numel()
    if n == 0:
        return TensorDiff(key, 0, 0.0, 0.0, 1.0, True)
    if a.dtype == b.dtype and torch.equal(a, b):  # NaN != NaN: a tensor with NaN is never here
        return TensorDiff(key, n, 0.0, 0.0, 1.0, True)  # no scale needed: max_rel is 0
    scale = max(_abs_max(a), _abs_max(b))
    exact_only = atol == 0 and rtol == 0 and a.dtype == b.dtype
    max_abs, dot, aa, bb, within = 0.0, 0.0, 0.0, 0.0, not exact_only
    for i in range(0, n, chunk):
        a64, b64 = a[i:i + chunk].to(torch.float64), b[i:i + chunk].to(torch.float64)
        d = a64 - b64
        lo, hi = torch.aminmax(d)
        lo, hi = float(lo), float(hi)
        if math.isnan(lo) or math.isnan(hi) or math.isnan(max_abs):
            max_abs = math.nan  # once NaN, NaN (as a whole-tensor max would say)
        else:
            max_abs = max(max_abs, -lo, hi)
        dot += float(a64 @ b64)
        aa += float(a64 @ a64)
        bb += float(b64 @ b64)
        if within:
            within = bool((d.abs_() <= atol + rtol * b64.abs_()).all())
    max_rel = max_abs / scale if scale > 0 else 0.0
    na, nb = math.sqrt(aa), math.sqrt(bb)
    cosine = dot / (na * nb) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
    return TensorDiff(key, n, max_abs, max_rel, cosine, within)


def _abs_max(t: torch.Tensor) -> float:
    """max |t| without a copy (min and max are exact in any dtype); NaN if t holds one."""
    if t.dtype == torch.bool:
        return float(bool(t.any()))
    lo, hi = torch.aminmax(t)
    return max(abs(float(lo)), abs(float(hi))) if not (math.isnan(float(lo)) or math.isnan(float(hi))) else math.nan


from ..io.proof import bit_equal  # noqa: E402,F401  (re-exported: its home is the proof of written files)


def relative_change(new: torch.Tensor, old: torch.Tensor, *, chunk: int = CHUNK) -> float:
    """||new - old|| / ||old||: how far training moved a tensor from where it started, summed in
    float64 over slices of ``chunk`` values."""
    moved = Moved()
    moved.add(new, old, chunk=chunk)
    return moved.rel_change


class Moved:
    """max |new - old| and ||new - old|| / ||old||, accumulated over slices in float64 (one slice's
    float64 copies at a time): ``add`` each part of a tensor, in any cut."""

    def __init__(self) -> None:
        self.max_abs, self._delta2, self._base2 = 0.0, 0.0, 0.0

    def add(self, new: torch.Tensor, old: torch.Tensor, *, chunk: int = CHUNK) -> None:
        new, old = new.detach().reshape(-1), old.detach().reshape(-1)
        for i in range(0, new.numel(), chunk):
            new64, old64 = new[i:i + chunk].to(torch.float64), old[i:i + chunk].to(torch.float64)
            d = new64 - old64
            lo, hi = torch.aminmax(d)
            lo, hi = float(lo), float(hi)
            if math.isnan(lo) or math.isnan(hi) or math.isnan(self.max_abs):
                self.max_abs = math.nan
            else:
                self.max_abs = max(self.max_abs, -lo, hi)
            self._delta2 += float(d @ d)
            self._base2 += float(old64 @ old64)

    @property
    def rel_change(self) -> float:
        base, delta = math.sqrt(self._base2), math.sqrt(self._delta2)
        return delta / base if base > 0 else (0.0 if delta == 0 else float("inf"))
