"""Inflation, end to end but for files: plan -> fresh units -> tensors, one at a time.

``prepare`` does all the checking (depth, names, shapes) on a meta-device network, so nothing is
allocated for tensors a loader would overwrite; ``tensors()`` then yields the output in state-dict
order, each computed from its 2D source just before it is written.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import Inflate3dError, InvalidInputError
from ..settings import format_settings
from ..slowfast.archs import HEAD_SETTINGS, Arch, build_model, get_arch, normalize_settings
from ..slowfast.resnet3d import init_module
from .kernels import METHODS, inflate_kernel, pad_columns_front, pad_in_channels
from .mapping import FRESH, HEAD, Plan, plan_inflation
from .sources import Source2D, resolve_source

HEAD_CHOICES = "none | imagenet | N (classes)"


def parse_head(head: str | int | None) -> str | int | None:
    """'none' -> None, 'imagenet' -> 'imagenet', 'N' -> N."""
    if head is None or head == "none":
        return None
    if head == "imagenet":
        return "imagenet"
    try:
        n = int(head)
    except (TypeError, ValueError):
        raise InvalidInputError(f"head {head!r}: expected {HEAD_CHOICES}") from None
    if n < 1:
        raise InvalidInputError(f"head {head!r}: the number of classes must be >= 1")
    return n


@dataclass
class Inflation:
    arch: Arch
    method: str
    head: str | int | None
    source: Source2D
    model: nn.Module  # meta-device target (fresh units materialised)
    plan: Plan
    seed: int
    settings: dict = field(default_factory=dict)  # arch settings on top of the named arch

    @property
    def float_dtype(self) -> torch.dtype:
        return self.source.tensors["conv1.weight"].dtype

    def dtype_of(self, entry) -> torch.dtype:
        if entry.source is not None:
            return self.source.tensors[entry.source].dtype
        return torch.int64 if entry.key.endswith("num_batches_tracked") else self.float_dtype

    def specs(self) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        return [(e.key, e.shape, self.dtype_of(e)) for e in self.plan.entries]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        fresh = self._fresh_tensors()
        for e in self.plan.entries:
            if e.action == FRESH:
                yield e.key, fresh[e.key].to(self.dtype_of(e))
                continue
            src = self.source.tensors[e.source]
            if len(e.shape) == 5:
                t = inflate_kernel(pad_in_channels(src, e.pad), e.shape[2], self.method)
            elif e.action == HEAD:
                t = pad_columns_front(src, e.pad)
            else:
                t = src.contiguous()
            yield e.key, t

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors())

    def _fresh_tensors(self) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        out: dict[str, torch.Tensor] = {}
        for unit in self.plan.fresh_units:
            if unit.endswith("num_batches_tracked"):
                out[unit] = torch.zeros((), dtype=torch.int64)
                continue
            module = _materialise(self.model.get_submodule(unit))
            if hasattr(module, "init_weights"):
                module.init_weights(generator=gen)
            else:
                for m in module.modules():
                    init_module(m, gen)
            out.update({f"{unit}.{k}": v for k, v in module.state_dict().items()})
        return out

    def report(self) -> dict:
        """Where every output tensor comes from, as plain data (what ``--json`` prints)."""
        import math

        src = self.source
        tensors = {action: {"tensors": len(entries), "values": sum(math.prod(e.shape) for e in entries)}
                   for action, entries in self.plan.by_action().items()}
        tensors = {action.replace(" ", "_").lower(): n for action, n in tensors.items()}  # JSON keys
        return {
            "source": {"label": src.label, "kind": src.kind, "description": src.description,
                       "sha256": src.sha256, "depth": src.depth},
            "arch": self.arch.name, "arch_settings": format_settings(self.settings),
            "method": self.method, "head": "none" if self.head is None else self.head,
            "tensors": tensors,
            "zero_padded": [e.key for e in self.plan.entries if e.padded],
            "fresh_units": self.plan.fresh_units,
            "unused_2d": self.plan.unused,
        }

    def metadata(self) -> dict[str, str]:
        """Provenance: no timestamps and no absolute paths, so outputs are reproducible."""
        return {
            "format": "inflate3d",
            "inflate3d_version": __version__,
            "scheme": "mmaction2",
            "arch": self.arch.name,
            "arch_settings": format_settings(self.settings),
            "method": self.method,
            "head": "none" if self.head is None else str(self.head),
            "source": self.source.label,
            "source_kind": self.source.kind,
            "source_sha256": self.source.sha256,
            "source_tensors_sha256": self.source.tensors_sha256,
            "source_depth": str(self.source.depth),
            "seed": str(self.seed),
        }


def _materialise(module: nn.Module) -> nn.Module:
    """Give a meta-device module real (uninitialised) CPU tensors, in place.

    Plain ``torch.empty`` rather than ``Module.to_empty``: on meta tensors the latter goes through
    a Python reference that imports sympy, half a second of start-up for nothing.
    """
    for m in module.modules():
        for name, p in m._parameters.items():
            if p is not None:
                m._parameters[name] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype), p.requires_grad)
        for name, b in m._buffers.items():
            if b is not None:
                m._buffers[name] = torch.empty(b.shape, dtype=b.dtype)
    return module


def prepare(source: Source2D, arch: str | Arch, *, method: str = "mean",
            head: str | int | None = None, seed: int = 0, settings: Mapping[str, Any] | None = None,
            overrides: Mapping[str, Any] | None = None) -> Inflation:
    """Check and plan the inflation of ``source`` into ``arch`` (plus ``settings``, e.g.
    ``{'slow_pathway': {'lateral_norm': True}}``; ``overrides`` is the same, by its older name),
    on a meta-device network; nothing is computed until ``tensors()``."""
    arch = arch if isinstance(arch, Arch) else get_arch(arch)
    from ..names import METHOD_ALIASES

    method = METHOD_ALIASES.get(method, method)
    settings = {**(overrides or {}), **(settings or {})}
    if method not in METHODS:
        raise InvalidInputError(f"inflation method {method!r}: choose one of {', '.join(METHODS)}")
    head = parse_head(head)
    if arch.family == "tsm":
        method = "copy"  # a TSM net holds the 2D weights as they are: nothing to inflate
    origin = source.label
    if source.depth != arch.depth:
        raise Inflate3dError(f"{origin}: is a ResNet-{source.depth} but {arch.name} needs a "
                             f"ResNet-{arch.depth}; pick an arch of depth {source.depth} "
                             "(see `inflate3d archs`)")
    if head == "imagenet":
        if "fc.weight" not in source.tensors:
            raise InvalidInputError(f"{origin}: has no fc.weight, so the imagenet head has nothing "
                                 "to keep; use head none or a number of classes")
        num_classes = int(source.tensors["fc.weight"].shape[0])
    else:
        num_classes = head
    settings = normalize_settings(arch, settings)
    model = build_model(arch, num_classes=num_classes, device="meta", init=False, **settings)
    plan = plan_inflation(model, source.tensors, head_from_2d=head == "imagenet", origin=origin)
    return Inflation(arch, method, head, source, model, plan, seed, settings)


@dataclass
class InflationResult:
    """What ``inflate3d.inflate`` returns: plain data."""

    state_dict: dict[str, torch.Tensor]  # mmaction2 Recognizer3D names
    report: dict  # where every tensor comes from (the CLI's --json)
    metadata: dict[str, str]  # provenance, as written into files
    arch: str
    settings: dict
    verification: object | None = None  # inflate3d.verify.Verification with verify=True


def inflate(source, arch: str | Arch, *, method: str = "mean", head: str | int | None = 400,
            seed: int = 0, settings: dict | None = None, verify: bool = False,
            trust_pickle: bool = False) -> InflationResult:
    """resolve the source -> plan -> tensors (-> verify), in memory."""
    from .sources import resolve_source

    arch = arch if isinstance(arch, Arch) else get_arch(arch)
    src = resolve_source(source, depth=arch.depth, trust_pickle=trust_pickle, seed=seed)
    inflation = prepare(src, arch, method=method, head="none" if head is None else head, seed=seed,
                        settings=settings)
    state_dict = inflation.state_dict()
    ver = None
    if verify:
        from ..verify import verify_inflated

        ver = verify_inflated(state_dict, arch, src.tensors, depth=src.depth, method=inflation.method,
                              origin=src.label, settings=inflation.settings,
                              head_from_2d=inflation.head == "imagenet")
    return InflationResult(state_dict, inflation.report(), inflation.metadata(), arch.name,
                           inflation.settings, ver)


def build_inflated(name: str | Arch, source, *, method: str = "mean", num_classes: int | str | None = 400,
                   seed: int = 0, trust_pickle: bool = False, **overrides: Any) -> nn.Module:
    """A named architecture with the 2D weights of ``source`` inflated in, by the engine of
    ``inflate3d inflate`` (``prepare``): the same tensors, loaded strictly. ``num_classes``: N (a
    fresh head, seeded by ``seed``), ``'imagenet'`` (the 2D classifier) or None (backbone only)."""
    arch = name if isinstance(name, Arch) else get_arch(name)
    src = resolve_source(source, depth=arch.depth, trust_pickle=trust_pickle, seed=seed)
    backbone = {k: v for k, v in overrides.items() if k not in HEAD_SETTINGS}
    inflation = prepare(src, arch, method=method, head=num_classes, seed=seed, settings=backbone)
    classes = int(src.tensors["fc.weight"].shape[0]) if inflation.head == "imagenet" else inflation.head
    model = build_model(arch, num_classes=classes, init=False, **overrides)
    model.load_state_dict(inflation.state_dict(), strict=True)
    return model
