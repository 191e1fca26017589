"""Named architectures as data, and ``build_model``: the one way to construct a network.

Each ``Arch`` is a frozen record of everything that defines a model: the backbone family and its
settings (mmaction2's config values), the head, the input clip it was designed for and the 2D ResNet
depth it inflates from. ``build_model`` turns a name (plus keyword overrides) into a ``Recognizer3D``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from .heads import I3DHead, SlowFastHead
from .recognizer import Recognizer3D
from .resnet3d import DEPTHS, STAGE_BLOCKS, ResNet3d
from .slowfast import ResNet3dSlowFast
from .tsm import ResNetTSM, TSMHead

HEAD_SETTINGS = ("spatial_type", "dropout_ratio", "init_std", "multi_class", "label_smooth_eps",
                 "loss_weight")


@dataclass(frozen=True)
class Arch:
    name: str
    family: str  # 'resnet3d' (I3D, Slow-only), 'slowfast' or 'tsm'
    depth: int
    backbone: Mapping[str, Any]
    clip: tuple[int, int, int]  # T, H, W of the clip the model is trained on
    description: str
    head: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pathways(self) -> int:
        return 2 if self.family == "slowfast" else 1


ARCHS: dict[str, Arch] = {}


def register(arch: Arch) -> Arch:
    if arch.name in ARCHS:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    ARCHS[arch.name] = arch
    return arch


def i3d_inflate_pattern(depth: int) -> tuple[tuple[int, ...], ...]:
    """mmaction2's I3D pattern for R50, ((1,1,1),(1,0,1,0),(1,0,1,0,1,0),(0,1,0)), generalised to
    any depth: every block of layer1, every other block of layer2/3 from the first, and of layer4
    from the second."""
    blocks = STAGE_BLOCKS[depth][1]
    return (tuple(1 for _ in range(blocks[0])),
            tuple(1 - b % 2 for b in range(blocks[1])),
            tuple(1 - b % 2 for b in range(blocks[2])),
            tuple(b % 2 for b in range(blocks[3])))


def _frozen(d: dict) -> Mapping[str, Any]:
    return MappingProxyType(d)


for _d in DEPTHS:
    register(Arch(f"i3d_r{_d}", "resnet3d", _d, _frozen(dict(
        depth=_d, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2,
        inflate=i3d_inflate_pattern(_d), zero_init_residual=False)), (32, 224, 224),
        "I3D: 5x7x7 stem, 3x1x1 in alternate blocks"))
for _d in DEPTHS:
    register(Arch(f"slowonly_r{_d}", "resnet3d", _d, _frozen(dict(
        depth=_d, conv1_kernel=(1, 7, 7), conv1_stride_t=1, pool1_stride_t=1,
        inflate=(0, 0, 1, 1), with_pool2=False)), (8, 224, 224),
        "Slow-only: 3x1x1 in layer3-4"))


def _slowfast(name: str, depth: int, resample: int, speed: int, fusion_kernel: int) -> Arch:
    return register(Arch(name, "slowfast", depth, _frozen(dict(
        resample_rate=resample, speed_ratio=speed, channel_ratio=8,
        slow_pathway=dict(depth=depth, lateral=True, fusion_kernel=fusion_kernel,
                          conv1_kernel=(1, 7, 7), conv1_stride_t=1, pool1_stride_t=1,
                          inflate=(0, 0, 1, 1)),
        fast_pathway=dict(depth=depth, lateral=False, base_channels=8, conv1_kernel=(5, 7, 7),
                          conv1_stride_t=1, pool1_stride_t=1))), (32, 224, 224),
        f"SlowFast: slow {32 // resample} + fast {32 * speed // resample} frames, "
        f"fusion {fusion_kernel}"))


for _d in DEPTHS:
    register(Arch(f"tsm_r{_d}", "tsm", _d, _frozen(dict(depth=_d, num_segments=8, shift_div=8,
                  shift_place="blockres")), (8, 224, 224),
                  "TSM: 2D ResNet, 1/8 + 1/8 channels shifted, 8 segments"))

_slowfast("slowfast_r50_4x16", 50, 8, 8, 5)
_slowfast("slowfast_r50_8x8", 50, 4, 4, 7)
_slowfast("slowfast_r101_4x16", 101, 8, 8, 5)
_slowfast("slowfast_r101_8x8", 101, 4, 4, 7)


# Builders of the other families' networks, by Arch.family (see inflate3d.families): each takes
# (arch, num_classes=..., **overrides) and returns the whole model (backbone and head).
BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_builder(family: str, build: Callable[..., nn.Module]) -> None:
    if family in BUILDERS or family in ("resnet3d", "slowfast", "tsm"):
        raise ValueError(f"a builder for family {family!r} is already registered")
    BUILDERS[family] = build


def all_archs() -> dict[str, Arch]:
    """Every named architecture, the other families' included (their modules register on first use)."""
    from ..families import load_all

    load_all()
    return ARCHS


def get_arch(name: str) -> Arch:
    archs = all_archs()
    try:
        return archs[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; choose one of: {', '.join(archs)}") from None


def build_backbone(arch: Arch, **overrides: Any) -> nn.Module:
    cfg = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in arch.backbone.items()}
    for key, value in overrides.items():
        if key in ("slow_pathway", "fast_pathway") and arch.family == "slowfast":
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    if arch.family == "slowfast":
        return ResNet3dSlowFast(**cfg)
    if arch.family == "tsm":
        return ResNetTSM(**cfg)
    depth = cfg.pop("depth")
    return ResNet3d(depth, **cfg)


def head_in_channels(backbone: nn.Module) -> int:
    if isinstance(backbone, ResNet3dSlowFast):
        return backbone.slow_path.feat_dim + backbone.fast_path.feat_dim
    return backbone.feat_dim


def build_model(name: str | Arch, *, num_classes: int | None = 400,
                device: torch.device | str | None = None, init: bool = True,
                **overrides: Any) -> Recognizer3D:
    """Build a named architecture as a ``Recognizer3D``.

    ``num_classes=None`` gives a backbone-only recognizer (no ``cls_head``). Keyword overrides
    replace backbone settings (for SlowFast, ``slow_pathway=``/``fast_pathway=`` dicts are merged
    into the pathway settings) or head settings (``dropout_ratio``, ``multi_class``, ...).
    ``device='meta'`` gives shapes and key lists without allocating any weight.
    """
    arch = name if isinstance(name, Arch) else get_arch(name)
    if arch.family in BUILDERS:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return BUILDERS[arch.family](arch, num_classes=num_classes, init=init, **overrides)
    head_cfg = dict(arch.head)
    backbone_overrides = {}
    for key, value in overrides.items():
        (head_cfg if key in HEAD_SETTINGS else backbone_overrides)[key] = value
    with torch.device(device) if device is not None else contextlib.nullcontext():
        backbone = build_backbone(arch, **backbone_overrides)
        head = None
        if num_classes is not None:
            if arch.family == "tsm":
                head = TSMHead(num_classes, backbone.feat_dim, num_segments=backbone.num_segments,
                               temporal_pool=backbone.temporal_pool, **head_cfg)
            else:
                head_cls = SlowFastHead if arch.family == "slowfast" else I3DHead
                head = head_cls(num_classes, head_in_channels(backbone), **head_cfg)
        model = Recognizer3D(backbone, head)
        if init:
            model.init_weights()
    return model


def state_dict_shapes(arch: str | Arch, *, num_classes: int | None = 400,
                      **overrides: Any) -> dict[str, tuple[int, ...]]:
    """{key: shape} of ``build_model(arch, num_classes=..., **overrides)`` in state-dict order,
    computed once per configuration (a meta build still costs ~50 ms of Python)."""
    name = arch.name if isinstance(arch, Arch) else arch
    key = (name, num_classes, _freeze(overrides))
    if key not in _SHAPE_CACHE:
        model = build_model(name, num_classes=num_classes, device="meta", init=False, **overrides)
        _SHAPE_CACHE[key] = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return dict(_SHAPE_CACHE[key])


_SHAPE_CACHE: dict[tuple, tuple] = {}


def _freeze(value: Any) -> Any:
    """A hashable copy of nested dicts / lists of literals."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
