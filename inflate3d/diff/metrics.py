"""How two tensors differ: pure functions of tensors, computed in float64."""
from __future__ import annotations

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


def compare(key: str, a: torch.Tensor, b: torch.Tensor, *, atol: float = 0.0, rtol: float = 0.0) -> TensorDiff:
    a64, b64 = a.detach().to(torch.float64).flatten(), b.detach().to(torch.float64).flatten()
    if a64.numel() == 0:
        return TensorDiff(key, 0, 0.0, 0.0, 1.0, True)
    diff = (a64 - b64).abs()
    max_abs = float(diff.max())
    scale = max(float(a64.abs().max()), float(b64.abs().max()))
    max_rel = max_abs / scale if scale > 0 else 0.0
    na, nb = float(a64.norm()), float(b64.norm())
    cosine = float(a64 @ b64) / (na * nb) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
    equal = bool(torch.equal(a, b)) if atol == 0 and rtol == 0 and a.dtype == b.dtype else \
        bool((diff <= atol + rtol * b64.abs()).all())
    return TensorDiff(key, a64.numel(), max_abs, max_rel, cosine, equal)


_SAME_WIDTH_INT = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.uint8}


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (NaN payloads included, unlike ``torch.equal``)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        width = _SAME_WIDTH_INT[a.element_size()]
        return bool(torch.equal(a.contiguous().view(width), b.contiguous().view(width)))
    return bool(torch.equal(a, b))


def relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    """||new - old|| / ||old||: how far training moved a tensor from where it started."""
    new64, old64 = new.detach().to(torch.float64), old.detach().to(torch.float64)
    base = float(old64.norm())
    delta = float((new64 - old64).norm())
    return delta / base if base > 0 else (0.0 if delta == 0 else float("inf"))
