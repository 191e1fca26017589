"""Video Swin's named architectures (mmaction2's ``arch`` zoo: tiny, small, base) and the builder
``build_model`` uses for them. ``Arch.depth`` holds the number of transformer blocks."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..slowfast.archs import Arch

if TYPE_CHECKING:  # the names register torch-free; ``build`` imports the network
    from ..slowfast.recognizer import Recognizer3D

FAMILY = "swin"
ZOO = {  # mmaction2 SwinTransformer3D.arch_zoo, with its Kinetics configs' drop_path_rate
    "t": dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.1),
    "s": dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2),
    "b": dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.3),
}
COMMON = dict(patch_size=(2, 4, 4), window_size=(8, 7, 7), mlp_ratio=4.0, qkv_bias=True)
NAMES = {"t": "tiny", "s": "small", "b": "base"}


def archs() -> list[Arch]:
    return [Arch(f"swin3d_{k}", FAMILY, sum(v["depths"]), MappingProxyType({**v, **COMMON}), (32, 224, 224),
                 f"Video Swin-{k.upper()} ({NAMES[k]}): patch 2x4x4, window 8x7x7, from a 2D Swin-{k.upper()}",
                 MappingProxyType({"dropout_ratio": 0.5}))
            for k, v in ZOO.items()]


def backbone_settings(arch: Arch, overrides: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**dict(arch.backbone), **overrides}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}


def build(arch: Arch, *, num_classes: int | None = 400, init: bool = True, **overrides: Any) -> Recognizer3D:
    """``Recognizer3D(SwinTransformer3D, I3DHead)``, mmaction2's Video Swin recognizer; head
    settings (``dropout_ratio``, ...) and backbone settings (``embed_dims``, ``depths``,
    ``num_heads``, ``window_size``, ...) may be overridden."""
    from ..slowfast.heads import I3DHead
    from ..slowfast.recognizer import Recognizer3D
    from .network import SwinTransformer3D

    head_keys = ("spatial_type", "dropout_ratio", "init_std", "multi_class", "label_smooth_eps", "loss_weight")
    head_cfg = {**dict(arch.head), **{k: v for k, v in overrides.items() if k in head_keys}}
    backbone = SwinTransformer3D(**backbone_settings(arch, {k: v for k, v in overrides.items() if k not in head_keys}))
    head = I3DHead(num_classes, backbone.num_features, **head_cfg) if num_classes is not None else None
    model = Recognizer3D(backbone, head)
    if init:
        model.init_weights()
    return model
