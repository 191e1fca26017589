"""What ``inflate_into`` did to every tensor of the target model, and which 2D tensors fed nothing."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..mapping import COPY, INFLATE
from ..sources import Source2D
from .align import Match

UNTOUCHED = "untouched"  # left exactly as the model had it
ACTIONS = (INFLATE, COPY, UNTOUCHED)


@dataclass(frozen=True)
class TensorAction:
    key: str  # the model's own state-dict name
    shape: tuple[int, ...]
    action: str  # inflated | copied | untouched
    source: str | None = None  # 2D tensor name
    pad: int = 0  # input channels appended as zeros

    @property
    def label(self) -> str:
        return f"{self.action}, zero-padded +{self.pad}" if self.pad else self.action


@dataclass
class IntoReport:
    model: str  # what the model is (class or factory)
    source: Source2D
    method: str
    input_shape: object  # the meta-device input the layer order was traced with
    tensors: list[TensorAction]  # every tensor of the model, in state-dict order
    unused_2d: list[str]  # 2D tensors that feed nothing
    matches: list[Match]  # 3D layer <-> 2D layer, in the model's forward order
    untouched_layers: list[str] = field(default_factory=list)  # conv / norm layers with no 2D counterpart

    def by_action(self) -> dict[str, list[TensorAction]]:
        out: dict[str, list[TensorAction]] = {a: [] for a in ACTIONS}
        for t in self.tensors:
            out[t.action].append(t)
        return out

    def summary(self) -> dict[str, dict[str, int]]:
        return {a: {"tensors": len(ts), "values": sum(math.prod(t.shape) for t in ts)}
                for a, ts in self.by_action().items()}

    @property
    def padded(self) -> list[TensorAction]:
        return [t for t in self.tensors if t.pad]

    def action_of(self, key: str) -> TensorAction:
        return next(t for t in self.tensors if t.key == key)

    def to_json(self) -> dict:
        src = self.source
        return {
            "model": self.model,
            "source": {"label": src.label, "kind": src.kind, "description": src.description,
                       "sha256": src.sha256, "depth": src.depth},
            "method": self.method,
            "traced_with_input": self.input_shape,
            "summary": self.summary(),
            "layers": [{"layer": m.layer3d.name, "source": m.layer2d.name, "kind": m.layer3d.kind,
                        "signature": m.layer3d.signature, "pad": m.pad, "hinted": m.hinted}
                       for m in self.matches],
            "tensors": [{"key": t.key, "action": t.action, "source": t.source, "shape": list(t.shape),
                         "pad": t.pad} for t in self.tensors],
            "untouched_layers": self.untouched_layers,
            "unused_2d": self.unused_2d,
        }
