"""Inflate a 2D ResNet into any 3D model whose structure corresponds: trace both layer graphs
(``trace``), align them by structure (``align``), plan every tensor, then write them in place and
say what happened to each (``report``). The proofs live in :mod:`inflate3d.verify.layers` and :mod:`inflate3d.verify.whole`.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ...errors import Inflate3dError
from ..kernels import METHODS, inflate_kernel, pad_in_channels
from ..mapping import COPY, INFLATE
from ..sources import Source2D, resolve_source
from .align import Match, align
from .report import UNTOUCHED, IntoReport, TensorAction
from .trace import Layer, first_conv_channels, trace_any, trace_layers

__all__ = ["IntoReport", "Layer", "Match", "TensorAction", "inflate_into", "plan_into", "source_network"]


def source_network(src: Source2D, module: nn.Module | None = None) -> nn.Module:
    """The 2D network whose structure is aligned: the module itself, else torchvision's ResNet of
    the source's depth (built on the meta device; only its structure is used)."""
    if module is not None:
        return module
    from ...verify.reference2d import ResNet2d

    classes = int(src.tensors["fc.weight"].shape[0]) if "fc.weight" in src.tensors else 1000
    with torch.device("meta"):
        return ResNet2d(src.depth, num_classes=classes)


def plan_into(model: nn.Module, src: Source2D, *, method: str, net2d: nn.Module,
              hints: Mapping[str, str] | None = None, input_shape=None,
              origin: str | None = None) -> tuple[IntoReport, dict[str, torch.Tensor]]:
    """(report, {model key: new tensor}) without touching ``model``."""
    origin = origin or type(model).__name__
    if method not in METHODS:
        raise Inflate3dError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    l2 = trace_layers(net2d, (1, first_conv_channels(net2d), 224, 224), origin=src.label)
    l3, shape = trace_any(model, input_shape, origin=origin)
    matches = align(l3, l2, hints=hints, origin=origin, source=src.label)
    state = model.state_dict(keep_vars=True)
    planned: dict[str, TensorAction] = {}
    new: dict[str, torch.Tensor] = {}
    for m in matches:
        module = model.get_submodule(m.layer3d.name)
        for tname, t in [*module._parameters.items(), *module._buffers.items()]:
            key, skey = f"{m.layer3d.name}.{tname}", f"{m.layer2d.name}.{tname}"
            if t is None or skey not in src.tensors or key not in state:
                continue
            action, tensor = _make(t, src.tensors[skey], m, method, key, skey, origin)
            planned[key] = TensorAction(key, tuple(t.shape), action, skey,
                                        m.pad if tname == "weight" and m.layer3d.kind == "conv" else 0)
            new[key] = tensor
    tensors = [planned.get(k) or TensorAction(k, tuple(v.shape), UNTOUCHED) for k, v in state.items()]
    used = {t.source for t in tensors if t.source}
    matched = {m.layer3d.name for m in matches}
    untouched = [a.name for a in l3 if a.kind != "linear" and a.name not in matched]
    report = IntoReport(origin, src, method, shape, tensors, [k for k in src.tensors if k not in used],
                        matches, untouched)
    return report, new


def _make(t3: torch.Tensor, t2: torch.Tensor, m: Match, method: str, key: str, skey: str,
          origin: str) -> tuple[str, torch.Tensor]:
    if m.layer3d.kind == "conv" and t3.dim() == 5 and t2.dim() == 4:  # conv kernel
        return (INFLATE if t3.shape[2] > 1 else COPY), inflate_kernel(pad_in_channels(t2, m.pad), t3.shape[2], method)
    if m.layer3d.kind == "conv" and t3.dim() == t2.dim() == 4:  # a 2D conv inside the 3D model
        t2 = pad_in_channels(t2, m.pad)
    if tuple(t3.shape) != tuple(t2.shape):
        raise Inflate3dError(f"{origin}: {key} {tuple(t3.shape)} cannot take {skey} {tuple(t2.shape)}")
    return COPY, t2.contiguous()


def inflate_into(model: nn.Module, source, *, method: str = "mean", strict: bool = False,
                 hints: Mapping[str, str] | None = None, input_shape=None, trust_pickle: bool = False,
                 origin: str | None = None) -> IntoReport:
    """Give ``model`` (any 3D network whose structure corresponds to a 2D ResNet's) the 2D
    weights of ``source``, in place, and return what was done to every tensor.

    ``source``: a file, ``torchvision:resnetNN[:WEIGHTS]``, ``seeded:resnetNN:SEED``, a state dict
    or a 2D ``nn.Module`` (any names: its structure is traced). Temporal kernels are inflated with
    ``method`` (``mean``: w/T per tap; ``center``: w in the centre tap), 1-frame kernels and norms
    (running statistics included) copied, input channels beyond the 2D layer's (lateral inputs)
    zero-filled at the end, a linear head copied when its shape matches; everything else is left
    as it was. ``strict``: refuse when a conv / norm of the model has no 2D counterpart.
    ``hints``: {model layer: 2D layer} to settle an ambiguity. ``input_shape``: the shape the
    model's forward takes (a list of shapes for multi-pathway models) when the usual clips fail.
    Nothing is changed when anything is refused.
    """
    src = resolve_source(source, trust_pickle=trust_pickle)
    module2d = source if isinstance(source, nn.Module) else None
    if module2d is None and src.depth is None:
        raise Inflate3dError(f"{src.label}: not a torchvision-style ResNet; pass the 2D module itself")
    report, new = plan_into(model, src, method=method, net2d=source_network(src, module2d), hints=hints,
                            input_shape=input_shape, origin=origin)
    if strict and report.untouched_layers:
        shown = ", ".join(report.untouched_layers[:6])
        more = f" and {len(report.untouched_layers) - 6} more" if len(report.untouched_layers) > 6 else ""
        raise Inflate3dError(f"{report.model}: strict: {len(report.untouched_layers)} conv / norm layers "
                             f"have no counterpart in {src.label} and would stay untouched: {shown}{more}")
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, tensor in new.items():
            state[key].copy_(tensor)
    return report
