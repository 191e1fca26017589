"""X3D's structural steps between schemes: tensor maths only, no names beyond the native ones.

- The head's 2048-wide layer: native ``cls_head.fc1`` is a Linear (O, I); PySlowFast's ``lin_5`` and
  pytorchvideo's ``post_conv`` are 1x1x1 convs (O, I, 1, 1, 1) applied after the pool: a reshape.
- pytorchvideo builds no shortcut BN where a block keeps its width (``dim_in == dim_out``: X3D's
  ``layer1.0``, mmaction2 issue #1550). Going there the BN is folded, exactly in eval mode::

      BN(y) = s * y + t,   s = gamma / sqrt(running_var + eps),   t = beta - running_mean * s
      BN_d(W_d x) + BN_3(z) = (s . W_d) x + [s_3 z + (t_3 + t)]

  so the shortcut conv becomes ``s . W_d`` (row-scaled) and ``t`` is added to the bias (beta) of the
  residual branch's last BN (``conv3.bn``), both computed in float64 and cast back. Coming back an
  identity BN is inserted: weight 1, bias 0, running_mean 0, running_var ``1 - eps`` (so
  ``var + eps`` is exactly 1), num_batches_tracked 0. An identity BN folds to nothing, so
  pytorchvideo -> native -> pytorchvideo is bit for bit; native -> pytorchvideo -> native is equal in
  (eval-mode) function, not in the bits of those tensors. Training-mode BN uses batch statistics,
  which no fold can reproduce.

The reshape and the inserted identity BN also take shape records (``io.structure.TensorMeta``), for
which they give the records of their results: ``inspect`` describes a file without torch.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-free to import; the tensor maths imports it
    import torch

BN_EPS = 1e-5  # BatchNorm3d's default in mmaction2, PySlowFast and pytorchvideo alike
BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
FC1 = "cls_head.fc1.weight"
_BLOCK = re.compile(r"backbone\.layer\d+\.\d+\.")


def _is_record(t) -> bool:
    """A shape record (``TensorMeta``), not a tensor."""
    from ..io.structure import TensorMeta

    return isinstance(t, TensorMeta)


def _reshaped(w, shape: tuple[int, ...]):
    if _is_record(w):
        from ..io.structure import TensorMeta

        return TensorMeta(tuple(shape), w.dtype)
    return w.reshape(*shape)


def fc1_to_conv(w: torch.Tensor) -> torch.Tensor:
    """(O, I) Linear weight -> (O, I, 1, 1, 1) conv weight (same values, same order)."""
    return _reshaped(w, (*w.shape, 1, 1, 1))


def fc1_from_conv(w: torch.Tensor) -> torch.Tensor:
    if w.dim() != 5 or tuple(w.shape[2:]) != (1, 1, 1):
        raise ValueError(f"expected a 1x1x1 conv weight, got shape {tuple(w.shape)}")
    return _reshaped(w, (w.shape[0], w.shape[1]))


def width_keeping_shortcuts(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Native block prefixes (``backbone.layer1.0.``) whose shortcut conv keeps the width: the
    blocks where pytorchvideo has no shortcut BN."""
    return [k[: -len("downsample.conv.weight")] for k, s in shapes.items()
            if k.endswith(".downsample.conv.weight") and s[0] == s[1]]


def is_identity_bn(bn: Mapping[str, torch.Tensor], eps: float = BN_EPS) -> bool:
    """Whether a BN's tensors are :func:`identity_bn`'s (meta tensors, having no values, are not)."""
    if _is_record(bn["running_var"]) or bn["running_var"].is_meta:
        return False
    import torch

    var = torch.full_like(bn["running_var"], 1 - eps)
    return bool((bn["weight"] == 1).all() and (bn["bias"] == 0).all()
                and (bn["running_mean"] == 0).all() and torch.equal(bn["running_var"], var))


def fold_shortcut_bn(native: Mapping[str, torch.Tensor], blocks: Iterable[str],
                     eps: float = BN_EPS) -> dict[str, torch.Tensor]:
    """Native tensors with each listed block's ``downsample.bn`` folded into ``downsample.conv``
    and ``conv3.bn.bias`` (see the module docstring). An identity BN is simply dropped."""
    import torch

    out = dict(native)
    for p in blocks:
        bn = {f: out.pop(f"{p}downsample.bn.{f}") for f in BN_FIELDS if f"{p}downsample.bn.{f}" in out}
        if is_identity_bn(bn, eps):
            continue
        w, bias = out[f"{p}downsample.conv.weight"], out[f"{p}conv3.bn.bias"]
        s = bn["weight"].double() / torch.sqrt(bn["running_var"].double() + eps)
        t = bn["bias"].double() - bn["running_mean"].double() * s
        out[f"{p}downsample.conv.weight"] = (w.double() * s.view(-1, 1, 1, 1, 1)).to(w.dtype)
        out[f"{p}conv3.bn.bias"] = (bias.double() + t).to(bias.dtype)
    return out


def identity_bn(like: torch.Tensor, channels: int, eps: float = BN_EPS) -> dict[str, torch.Tensor]:
    """The tensors of a BN that is the identity in eval mode (``like`` gives dtype and device; a
    shape record gives the records of those tensors)."""
    if _is_record(like):
        from ..io.structure import TensorMeta

        vector = TensorMeta((channels,), like.dtype)
        return {"weight": vector, "bias": vector, "running_mean": vector, "running_var": vector,
                "num_batches_tracked": TensorMeta((), "int64")}
    import torch

    return {"weight": torch.ones(channels, dtype=like.dtype, device=like.device),
            "bias": torch.zeros(channels, dtype=like.dtype, device=like.device),
            "running_mean": torch.zeros(channels, dtype=like.dtype, device=like.device),
            "running_var": torch.full((channels,), 1 - eps, dtype=like.dtype, device=like.device),
            "num_batches_tracked": torch.zeros((), dtype=torch.int64, device=like.device)}


def insert_identity_bn(native: Mapping[str, torch.Tensor], blocks: Iterable[str],
                       eps: float = BN_EPS) -> dict[str, torch.Tensor]:
    """Give each listed block a ``downsample.bn`` that is the identity (pytorchvideo -> native)."""
    out = dict(native)
    for p in blocks:
        w = out[f"{p}downsample.conv.weight"]
        out.update({f"{p}downsample.bn.{f}": v for f, v in identity_bn(w, w.shape[0], eps).items()})
    return out


def peer_order(keys: Iterable[str]) -> list[str]:
    """Native key order with each block's SE moved before its ``conv3``, which is where PySlowFast
    and pytorchvideo register it (inside the depthwise conv's branch): their own state-dict order."""
    out: list[str] = []
    held: list[str] = []  # the current block's conv3 keys
    current = None
    for k in keys:
        m = _BLOCK.match(k)
        block = m.group(0) if m else None
        if block != current:
            out += held
            held, current = [], block
        if block is not None and k[len(block):].startswith("conv3."):
            held.append(k)
        else:
            out.append(k)
    return out + held
