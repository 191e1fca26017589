"""Tensor surgery for inflation: pure functions of tensors, no names, no files. Dtype is kept."""
from __future__ import annotations

import torch

METHODS = ("mean", "center")


def inflate_kernel(w2d: torch.Tensor, t: int, method: str = "mean") -> torch.Tensor:
    """A 2D conv kernel (O, I, kH, kW) as a 3D kernel (O, I, t, kH, kW).

    ``mean`` (I3D, Carreira & Zisserman 2017): every temporal tap is ``w2d / t``, so the taps sum
    to ``w2d`` and, away from temporal zero padding, a static video gives the 2D response. It is
    computed as mmaction2's ``inflate_weights`` does (expand, then divide), bit for bit.
    ``center`` (I3ResNet, ViViT, UniFormer): ``w2d`` in tap ``(t - 1) // 2`` (the tap that reads the
    current frame under ``(t - 1) // 2`` padding), zeros elsewhere; a static video gives the 2D
    response in every frame, padding or not.
    """
    if w2d.dim() != 4:
        raise ValueError(f"expected a 4-D conv kernel, got shape {tuple(w2d.shape)}")
    if t < 1:
        raise ValueError(f"temporal size must be >= 1, got {t}")
    o, i, kh, kw = w2d.shape
    if method == "mean":
        return (w2d.unsqueeze(2).expand(o, i, t, kh, kw) / t).contiguous()
    if method == "center":
        w3d = w2d.new_zeros((o, i, t, kh, kw))
        w3d[:, :, (t - 1) // 2] = w2d
        return w3d
    raise ValueError(f"unknown inflation method {method!r}; choose one of {METHODS}")


def deflate_kernel(w3d: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """The inverse of :func:`inflate_kernel`: sum over time (``mean``) or the centre tap."""
    if w3d.dim() != 5:
        raise ValueError(f"expected a 5-D conv kernel, got shape {tuple(w3d.shape)}")
    if method == "mean":
        return w3d.sum(dim=2)
    if method == "center":
        return w3d[:, :, (w3d.shape[2] - 1) // 2]
    raise ValueError(f"unknown inflation method {method!r}; choose one of {METHODS}")


def kernel_method(w3d: torch.Tensor) -> str:
    """How a 3D kernel (O, I, T, kH, kW) reads as an inflation: 'copy' (T = 1, both methods agree),
    'center' (zeros off the centre tap) or 'mean' (anything else)."""
    t = w3d.shape[2]
    if t == 1:
        return "copy"
    c = (t - 1) // 2
    off_centre = torch.cat((w3d[:, :, :c].flatten(), w3d[:, :, c + 1:].flatten()))
    return "mean" if bool(off_centre.any()) else "center"


def pad_in_channels(w: torch.Tensor, extra: int) -> torch.Tensor:
    """Append ``extra`` zero input channels at the end of dim 1 (where SlowFast's laterals are
    concatenated), so those channels contribute nothing until trained."""
    if extra < 0:
        raise ValueError(f"cannot pad by {extra} channels")
    if extra == 0:
        return w
    pad = w.new_zeros((w.shape[0], extra, *w.shape[2:]))
    return torch.cat((w, pad), dim=1)


def pad_columns_front(w: torch.Tensor, extra: int) -> torch.Tensor:
    """Prepend ``extra`` zero input columns to a linear weight (O, I): the fast-pathway columns of
    mmaction2's SlowFast head, which come before the slow ones."""
    if extra == 0:
        return w
    return torch.cat((w.new_zeros((w.shape[0], extra)), w), dim=1)
