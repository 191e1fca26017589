"""Tensor maths of ViT inflation: pure functions of tensors, dtype kept.

Tubelet kernels follow scenic's ViViT initialisers for a 2D patch kernel ``w`` (D, C, p, p) spread
over ``t`` frames (D, C, t, p, p):

- ``mean``: ``w / t`` in every slot; a static clip gives exactly the patch embedding.
- ``center``: ``w`` in slot ``t // 2``, zeros elsewhere; a static clip gives exactly the patch embedding.
- ``arp`` (approximate rank pooling): slot j (1-based) holds ``w * a_j / t`` with
  ``a_j = 2(t - j + 1) - (t + 1)(H_t - H_{j-1})``, H the harmonic numbers. The a_j sum to zero, so a
  static clip gives the bias alone: ARP embeds change over time, not appearance.
"""
from __future__ import annotations

from fractions import Fraction

import torch

TUBELET_METHODS = ("mean", "center", "arp")


def harmonic(n: int) -> Fraction:
    return sum((Fraction(1, k) for k in range(1, n + 1)), Fraction(0))


def arp_coefficients(t: int) -> list[Fraction]:
    """a_1 .. a_t of approximate rank pooling, exactly."""
    return [2 * (t - j + 1) - (t + 1) * (harmonic(t) - harmonic(j - 1)) for j in range(1, t + 1)]


def tubelet_weights(t: int, method: str) -> list[float]:
    """The factor each temporal slot multiplies the 2D kernel by."""
    if method == "mean":
        return [1.0 / t] * t
    if method == "center":
        return [1.0 if j == t // 2 else 0.0 for j in range(t)]
    if method == "arp":
        return [float(a / t) for a in arp_coefficients(t)]
    raise ValueError(f"unknown tubelet method {method!r}; choose one of {', '.join(TUBELET_METHODS)}")


def tubelet_kernel(w2d: torch.Tensor, t: int, method: str) -> torch.Tensor:
    """(D, C, p, p) -> (D, C, t, p, p), slot j = w2d * tubelet_weights(t, method)[j]."""
    factors = torch.tensor(tubelet_weights(t, method), dtype=torch.float64)
    w = w2d.double().unsqueeze(2) * factors.view(1, 1, t, 1, 1)
    return w.to(w2d.dtype).contiguous()


def tubelet_method(w3d: torch.Tensor, w2d: torch.Tensor) -> str | None:
    """Which method made ``w3d`` from ``w2d`` (bit for bit), or None."""
    for method in TUBELET_METHODS:
        if torch.equal(w3d, tubelet_kernel(w2d.to(w3d.dtype), w3d.shape[2], method)):
            return method
    return None


def resize_pos_embed(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + g*g, D) -> (1, 1 + grid*grid, D): the class position kept, the patch positions
    resampled bicubically on their 2D grid (timm's ``resample_abs_pos_embed``); a copy when equal."""
    g = int((pos.shape[1] - 1) ** 0.5)
    if g == grid:
        return pos.clone()
    patches = pos[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2).double()
    patches = torch.nn.functional.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False,
                                              antialias=True)
    patches = patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pos.dtype)
    return torch.cat((pos[:, :1], patches), 1)


def tile_pos_embed(pos: torch.Tensor, steps: int) -> torch.Tensor:
    """(1, 1 + N, D) -> (1, 1 + steps*N, D): the patch positions repeated for every time step
    (time-major, as ViViT orders its tubelets), the class position once."""
    return torch.cat((pos[:, :1], pos[:, 1:].repeat(1, steps, 1)), 1)
