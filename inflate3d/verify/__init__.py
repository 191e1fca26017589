"""Checks that load, run and compare: strict loading, boring-video equivalence with the 2D source."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..errors import CHECK_FAILED, Inflate3dError
from ..inflate.kernels import METHODS, kernel_method
from ..slowfast.archs import Arch, build_model
from .boring import StageCheck, boring_video_check, build_2d, width_mismatch
from .strict import strict_load

__all__ = ["StageCheck", "Verification", "boring_video_check", "detect_method", "strict_load",
           "verify_inflated"]


@dataclass
class Verification:
    arch: str
    method: str
    checks: list[StageCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # arch settings it was checked with
    scheme: str = "mmaction2"  # the names the checkpoint came in
    warnings: list[str] = field(default_factory=list)  # true but worth knowing (e.g. inexact clip lengths)
    caveats: list[str] = field(default_factory=list)  # what the checks do not prove

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


def detect_method(tensors: Mapping[str, torch.Tensor]) -> str:
    """'center' when every temporal kernel has zeros off its centre tap, else 'mean'."""
    kernels = [t for k, t in tensors.items() if t.dim() == 5 and t.shape[2] > 1 and "fast_path" not in k
               and "_lateral" not in k]
    if not kernels:
        return "mean"  # nothing temporal to tell: both methods give the same tensors
    return "center" if all(kernel_method(w) == "center" for w in kernels) else "mean"


def verify_inflated(tensors: Mapping[str, torch.Tensor], arch: Arch, source_tensors: Mapping[str, torch.Tensor],
                    *, depth: int, method: str | None = None, origin: str, size: int = 32,
                    seed: int = 0, settings: Mapping | None = None,
                    head_from_2d: bool | None = None) -> Verification:
    """Strict-load ``tensors`` (recognizer names) into ``arch`` and compare with the 2D source on a
    boring video. ``settings`` are the arch settings it was built with (``{'slow_pathway':
    {'lateral_norm': True}}``). The logits are compared too when the head is the 2D classifier's:
    as recorded (``head_from_2d``, from the inflation's ``head`` choice), never guessed from a
    class count that a fresh head may share; without a record, the logits are not compared (said
    in a note)."""
    method = "shift" if arch.family == "tsm" else (method or detect_method(tensors))
    if method not in METHODS + ("shift",):
        raise Inflate3dError(f"{origin}: unknown inflation method {method!r}", exit_code=CHECK_FAILED)
    head_w = tensors.get("cls_head.fc_cls.weight")
    num_classes = int(head_w.shape[0]) if head_w is not None else None
    model = build_model(arch, num_classes=num_classes, device="meta", init=False, **dict(settings or {}))
    strict_load(model, tensors, origin)
    result = Verification(arch.name, method, settings=dict(settings or {}))
    result.notes.append(f"strict load into {arch.name}: {len(tensors)} tensors, no missing or "
                        "unexpected keys, all shapes equal")
    net2d = build_2d(source_tensors, depth)
    if why := width_mismatch(model, net2d):
        raise Inflate3dError(f"{origin}: {why}: it is not an inflation of this 2D source, and the two "
                             "cannot be compared; check --against", exit_code=CHECK_FAILED)
    compare_logits = bool(head_from_2d) and head_w is not None and "fc.weight" in source_tensors and \
        int(source_tensors["fc.weight"].shape[0]) == num_classes
    if head_from_2d is None and head_w is not None:
        result.notes.append("no recorded head choice: the head is taken as fresh and the logits are "
                            "not compared (a head kept from 2D is recorded as head=imagenet)")
    dtype = next(iter(tensors.values())).dtype
    with torch.random.fork_rng(devices=[]):
        result.checks = boring_video_check(model, net2d, method=method, dtype=dtype, size=size,
                                           seed=seed, compare_logits=compare_logits)
    return result
