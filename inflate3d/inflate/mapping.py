"""The inflation plan: for every tensor of the target network, where it comes from and how.

The 2D->3D name map is derived from the target's module tree (every ``ConvBN3d`` of the slow /
single pathway has a torchvision counterpart), never from hand-written key lists. The whole plan,
checked against the source's shapes, exists before any tensor moves.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import Inflate3dError
from ..slowfast.conv import ConvBN3d
from ..slowfast.tsm import ConvBN2d
from ..slowfast.slowfast import ResNet3dSlowFast
from .resnet2d import names_2d

INFLATE = "inflated"  # 2D kernel spread over a temporal kernel > 1
COPY = "copied"  # same values (BN tensors, biases, 1xkxk kernels)
FRESH = "fresh init"  # no 2D counterpart (fast pathway, laterals, a new head)
HEAD = "from 2D fc"  # the 2D classifier, fast-pathway columns zero-filled
ACTIONS = (INFLATE, COPY, HEAD, FRESH)


@dataclass(frozen=True)
class Entry:
    key: str  # target (mmaction2 recognizer) name
    shape: tuple[int, ...]
    action: str
    source: str | None = None  # 2D name
    pad: int = 0  # input channels appended as zeros (lateral inputs) / head columns prepended

    @property
    def padded(self) -> bool:
        return self.pad > 0


@dataclass
class Plan:
    entries: list[Entry]
    unused: list[str]  # 2D tensors that feed nothing (e.g. fc.* without --head imagenet)
    fresh_units: list[str] = field(default_factory=list)  # modules that start from a fresh init
    actions: tuple[str, ...] = ACTIONS  # the family's actions, in the order reports list them

    def by_action(self) -> dict[str, list[Entry]]:
        out: dict[str, list[Entry]] = {a: [] for a in self.actions}
        for e in self.entries:
            out[e.action].append(e)
        return out


def inflatable_units(model: nn.Module) -> dict[str, str]:
    """{unit module path in the target: its path relative to a 2D ResNet}. Only the slow (or
    single) pathway's conv units have 2D counterparts; laterals and the fast pathway do not."""
    backbone = model.backbone
    prefix = "backbone."
    if isinstance(backbone, ResNet3dSlowFast):
        backbone, prefix = backbone.slow_path, "backbone.slow_path."
    units = {}
    for name, module in backbone.named_modules():
        if isinstance(module, (ConvBN3d, ConvBN2d)) and not name.endswith("_lateral"):
            # TSM's shift / pool wrappers hold the wrapped module as ``net``: not a 2D name
            units[prefix + name] = ".".join(part for part in name.split(".") if part != "net")
    return units


def plan_inflation(model: nn.Module, source: Mapping[str, torch.Tensor], *, head_from_2d: bool,
                   origin: str) -> Plan:
    """Plan the inflation of ``source`` (a torchvision state dict) into ``model`` (any device,
    usually meta). Raises with every incompatibility listed, before any tensor is made."""
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped: dict[str, Entry] = {}
    problems: list[str] = []
    for unit, rel in inflatable_units(model).items():
        conv2d, bn2d = names_2d(rel)
        for suffix, src_module in (("conv", conv2d), ("bn", bn2d)):
            for tname in _tensor_names(model.get_submodule(f"{unit}.{suffix}")):
                key, src = f"{unit}.{suffix}.{tname}", f"{src_module}.{tname.rsplit('.', 1)[-1]}"
                if src not in source:
                    if tname == "num_batches_tracked":
                        continue  # stays a fresh 0, like a new BN
                    problems.append(f"{src} missing (needed for {key})")
                    continue
                entry = _entry(key, target[key], src, tuple(source[src].shape))
                if entry is None:
                    problems.append(f"{src} {tuple(source[src].shape)} does not fit {key} {target[key]}")
                else:
                    mapped[key] = entry
    if head_from_2d:
        problems += _plan_head(model, target, source, mapped)
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise Inflate3dError(f"{origin}: cannot inflate into this architecture: {shown}")
    entries = [mapped.get(k) or Entry(k, shape, FRESH) for k, shape in target.items()]
    used = {e.source for e in entries if e.source}
    unused = [k for k in source if k not in used]
    fresh = {e.key for e in entries if e.action == FRESH}
    return Plan(entries, unused, fresh_units(model, fresh))


def _tensor_names(module: nn.Module) -> list[str]:
    """Parameter and buffer names of a conv or BN, through wrappers (TSM's ``net.weight``)."""
    return [n for n, _ in module.named_parameters()] + [n for n, b in module.named_buffers() if b is not None]


def _entry(key: str, shape: tuple[int, ...], src: str, src_shape: tuple[int, ...]) -> Entry | None:
    if len(shape) == 5 and len(src_shape) == 4:  # conv kernel: (O, I+pad, T, kh, kw) <- (O, I, kh, kw)
        o, i, t, kh, kw = shape
        if (o, kh, kw) != (src_shape[0], *src_shape[2:]) or i < src_shape[1]:
            return None
        return Entry(key, shape, INFLATE if t > 1 else COPY, src, pad=i - src_shape[1])
    return Entry(key, shape, COPY, src) if shape == src_shape else None


def _plan_head(model, target, source, mapped) -> list[str]:
    if "fc.weight" not in source or "fc.bias" not in source:
        return ["fc.weight/fc.bias missing: the source has no classifier to keep (head imagenet)"]
    w_key, b_key = "cls_head.fc_cls.weight", "cls_head.fc_cls.bias"
    if w_key not in target:
        return ["the target has no head; build it with the 2D classifier's classes"]
    (k, c), (k2, c2) = target[w_key], tuple(source["fc.weight"].shape)
    if k != k2 or c < c2 or target[b_key] != tuple(source["fc.bias"].shape):
        return [f"fc.weight {(k2, c2)} does not fit {w_key} {(k, c)}"]
    mapped[w_key] = Entry(w_key, (k, c), HEAD if c > c2 else COPY, "fc.weight", pad=c - c2)
    mapped[b_key] = Entry(b_key, (k,), COPY, "fc.bias")
    return []


def fresh_units(model: nn.Module, fresh_keys: set[str]) -> list[str]:
    """The largest submodules whose every tensor is fresh (e.g. ``backbone.fast_path``,
    ``backbone.slow_path.layer1_lateral``, ``cls_head``), in module order. Whole units are
    initialised together so the init rules that span a module (zero-init residual BNs) hold."""
    chosen: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(c + ".") for c in chosen):
            continue
        keys = [f"{name}.{k}" for k in module.state_dict()]
        if keys and all(k in fresh_keys for k in keys):
            chosen.append(name)
    covered = {f"{c}.{k}" for c in chosen for k in model.get_submodule(c).state_dict()}
    leftover = sorted(fresh_keys - covered)
    return chosen + leftover  # leftovers: single tensors such as a num_batches_tracked
