"""How far apart PySlowFast's and mmaction2's non-local blocks are on the same weights.

The names of a non-local block convert one to one, the maths do not (see
``slowfast/non_local.py``): this runs the network both ways on one seeded clip and reports the
relative difference of the outputs, so a conversion can say plainly how far from equivalent it is.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import torch

from ..slowfast.archs import build_model, get_arch, setting_of


def non_local_settings(arch_name: str, overrides: Mapping) -> tuple[str | None, dict | None]:
    """(where the non-local settings sit: None or 'slow_pathway', their cfg), or (None, None)."""
    arch = get_arch(arch_name)
    for where in ((None,) if arch.family != "slowfast" else ("slow_pathway",)):
        key = f"{where}.non_local" if where else "non_local"
        pattern = setting_of(arch, key, overrides)
        if pattern and pattern != 0 and any(any(s) if isinstance(s, (tuple, list)) else s for s in
                                            (pattern if isinstance(pattern, (tuple, list)) else (pattern,))):
            cfg_key = f"{where}.non_local_cfg" if where else "non_local_cfg"
            return where, dict(setting_of(arch, cfg_key, overrides) or {})
    return None, None


@torch.no_grad()
def non_local_gap(arch_name: str, overrides: Mapping, native: Mapping[str, torch.Tensor],
                  num_classes: int | None, size: int = 32) -> float | None:
    """max |a - b| / max |a| of the outputs with the non-local blocks pooling before phi and g (a)
    and after them (b), on one seeded clip; None when the network has no non-local block."""
    where, cfg = non_local_settings(arch_name, overrides)
    if cfg is None:
        return None
    outputs = []
    for pool_first in (True, False):
        settings = copy.deepcopy(dict(overrides))
        target = settings.setdefault(where, {}) if where else settings
        target["non_local_cfg"] = {**cfg, "pool_first": pool_first}
        model = build_model(arch_name, num_classes=num_classes, init=False, **settings)
        model.load_state_dict({k: v.float() for k, v in native.items()}, strict=True)
        frames = 32 if get_arch(arch_name).family == "slowfast" else 8
        clip = torch.randn(1, 3, frames, size, size, generator=torch.Generator().manual_seed(0))
        out = model.eval()(clip)
        outputs.append(torch.cat([o.flatten() for o in out]) if isinstance(out, tuple) else out.flatten())
    a, b = outputs
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
