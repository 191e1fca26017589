"""X3D's named architectures (as data) and the builder ``build_model`` calls for ``family='x3d'``.

X3D-XS, -S and -M are one network (the same weights); they differ only in the clip they are trained
and tested on. X3D-L is deeper (``gamma_d`` 5.0). Where each comes from is kept as data in
``ORIGINS`` (and spelled out in the description that ``inflate3d archs`` prints).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..slowfast.archs import Arch, register

if TYPE_CHECKING:  # the names register torch-free; ``build`` imports the network
    from torch import nn

FAMILY = "x3d"
HEAD_SETTINGS = ("spatial_type", "dropout_ratio", "init_std", "fc1_bias", "multi_class",
                 "label_smooth_eps", "loss_weight")

# name: (gamma_d, clip T x H x W as trained, {codebase: where the architecture comes from})
_SIZES = {
    "x3d_xs": (2.2, (4, 160, 160), {"mmaction2": None, "pyslowfast": "configs/Kinetics/X3D_XS.yaml",
                                     "pytorchvideo": "hub x3d_xs"}),
    "x3d_s": (2.2, (13, 160, 160), {"mmaction2": "x3d/x3d_s_13x6x1_facebook-kinetics400-rgb.py",
                                    "pyslowfast": "configs/Kinetics/X3D_S.yaml", "pytorchvideo": "hub x3d_s"}),
    "x3d_m": (2.2, (16, 224, 224), {"mmaction2": "x3d/x3d_m_16x5x1_facebook-kinetics400-rgb.py",
                                    "pyslowfast": "configs/Kinetics/X3D_M.yaml", "pytorchvideo": "hub x3d_m"}),
    "x3d_l": (5.0, (16, 312, 312), {"mmaction2": None, "pyslowfast": "configs/Kinetics/X3D_L.yaml",
                                    "pytorchvideo": "hub x3d_l"}),
}
ORIGINS = {name: MappingProxyType(origins) for name, (_, _, origins) in _SIZES.items()}
# XS, S and M share their weights: a file of them names x3d_s unless told otherwise
SAME_WEIGHTS_DEFAULT = "x3d_s"


def _description(name: str, gamma_d: float, origins: dict) -> str:
    where = "; ".join(f"{k} {v}" for k, v in origins.items() if v)
    missing = [k for k, v in origins.items() if not v]
    return (f"X3D-{name[4:].upper()}: depth x{gamma_d}, width 24, bottleneck x2.25; {where}"
            + (f"; no {' / '.join(missing)} config" if missing else ""))


for _name, (_gamma_d, _clip, _origins) in _SIZES.items():
    register(Arch(_name, FAMILY, 0, MappingProxyType(dict(gamma_w=1.0, gamma_b=2.25, gamma_d=_gamma_d)),
                  _clip, _description(_name, _gamma_d, _origins)))


def build(arch: Arch, *, num_classes: int | None = 400, init: bool = True,
          average_clips: str | None = "prob", **overrides: Any) -> nn.Module:
    """``Recognizer3D(X3D(...), X3DHead(...))``; keyword overrides go to the backbone or, for
    ``HEAD_SETTINGS``, to the head."""
    from ..slowfast.recognizer import Recognizer3D
    from .head import X3DHead
    from .network import X3D

    backbone_cfg, head_cfg = dict(arch.backbone), dict(arch.head)
    for key, value in overrides.items():
        (head_cfg if key in HEAD_SETTINGS else backbone_cfg)[key] = value
    backbone = X3D(**backbone_cfg)
    head = None if num_classes is None else X3DHead(num_classes, backbone.feat_dim, **head_cfg)
    model = Recognizer3D(backbone, head, average_clips=average_clips)
    if init:
        model.init_weights()
    return model
