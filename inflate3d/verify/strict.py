"""Strict loading: every key present, none extra, every shape equal; reported all at once."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CHECK_FAILED, Inflate3dError


def compare_keys(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, tuple[int, ...]]):
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    mismatched = [f"{k} {got[k]} != {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    return missing, unexpected, mismatched


def strict_load(model: nn.Module, tensors: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load ``tensors`` into ``model`` or raise listing every missing/unexpected/mis-shaped key.

    The tensors are assigned, not copied, so ``model`` may be built on the meta device."""
    check_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()}, tensors, origin)
    model.load_state_dict(tensors, strict=True, assign=True)


def check_shapes(expected: Mapping[str, tuple[int, ...]], tensors: Mapping[str, torch.Tensor], origin: str) -> None:
    """Raise unless ``tensors`` has exactly the keys of ``expected``, with the same shapes."""
    missing, unexpected, mismatched = compare_keys(expected, {k: tuple(v.shape) for k, v in tensors.items()})
    problems = [(f"{len(missing)} missing", missing), (f"{len(unexpected)} unexpected", unexpected),
                (f"{len(mismatched)} with other shapes", mismatched)]
    if missing or unexpected or mismatched:
        text = "; ".join(f"{title} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                         for title, keys in problems if keys)
        raise Inflate3dError(f"{origin}: does not load strictly: {text}", exit_code=CHECK_FAILED)
