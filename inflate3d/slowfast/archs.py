"""Named architectures as data, and ``build_model``: the one way to construct a network.

Each ``Arch`` is a frozen record of everything that defines a model: the backbone family and its
settings (mmaction2's config values), the head, the input clip it was designed for and the 2D ResNet
depth it inflates from. ``build_model`` turns a name (plus keyword overrides) into a ``Recognizer3D``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ..errors import InvalidInputError, UnknownNameError
from ..settings import format_settings
from .heads import I3DHead, SlowFastHead
from .pathway import ResNet3dPathway
from .recognizer import Recognizer3D
from .resnet3d import DEPTHS, STAGE_BLOCKS, ResNet3d
from .slowfast import ResNet3dSlowFast
from .tsm import ResNetTSM, TSMHead

HEAD_SETTINGS = ("spatial_type", "dropout_ratio", "init_std", "multi_class", "label_smooth_eps",
                 "loss_weight")
# settings of the pathway that owns the laterals: given at the top level, they can only mean it
LATERAL_SETTINGS = ("lateral_norm", "lateral_inv", "fusion_kernel", "lateral_infl", "lateral_activate")


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


def get_arch(name: str) -> Arch:
    """The registered architecture ``name``; an unknown name is an ``UnknownNameError`` (a
    ``KeyError``) that suggests the closest names."""
    try:
        return ARCHS[name]
    except KeyError:
        from ..names import unknown_arch_message

        raise UnknownNameError(unknown_arch_message(name, ARCHS)) from None


def _parameters(cls: type) -> set[str]:
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    return names


def backbone_settings(arch: Arch) -> set[str]:
    """The settings a backbone of this family takes at its top level."""
    cls = {"slowfast": ResNet3dSlowFast, "tsm": ResNetTSM}.get(arch.family, ResNet3d)
    return _parameters(cls)


def route_settings(arch: Arch, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone settings, head settings) from keyword overrides, checked against the family.

    For SlowFast, a lateral setting given at the top level (``lateral_norm=True``) goes to the
    pathway that owns the laterals (``slow_pathway``); any other pathway setting must say which
    pathway. An unknown key is an ``UnknownNameError`` that says where such a setting belongs."""
    backbone, head = {}, {}
    top = backbone_settings(arch)
    pathway = _parameters(ResNet3dPathway) if arch.family == "slowfast" else set()
    for key, value in overrides.items():
        if key in HEAD_SETTINGS:
            head[key] = value
        elif key in top:
            if key in ("slow_pathway", "fast_pathway"):
                if not isinstance(value, Mapping):
                    raise InvalidInputError(f"{arch.name}: {key} takes a dict of pathway settings, "
                                            f"e.g. {key}={{'lateral_norm': True}}")
                unknown = sorted(set(value) - pathway)
                if unknown:
                    raise UnknownNameError(f"{arch.name}: {key} has no setting {', '.join(unknown)}; "
                                           f"pathway settings: {', '.join(sorted(pathway))}")
            backbone[key] = value
        elif key in LATERAL_SETTINGS and arch.family == "slowfast":
            lateral = "slow_pathway" if arch.backbone["slow_pathway"].get("lateral") else "fast_pathway"
            backbone[lateral] = {**backbone.get(lateral, {}), key: value}
        elif key in pathway:
            raise UnknownNameError(f"{arch.name}: {key} is a setting of each pathway; say which one: "
                                   f"slow_pathway={{{key!r}: {value!r}}} or fast_pathway={{{key!r}: {value!r}}} "
                                   f"(as KEY=VALUE: slow_pathway.{key}=... or fast_pathway.{key}=...)")
        else:
            raise UnknownNameError(f"{arch.name}: unknown setting {key!r}; {arch.family} backbones take "
                                   f"{', '.join(sorted(top))}; heads take {', '.join(HEAD_SETTINGS)}")
    return backbone, head


def normalize_settings(arch: Arch, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` checked and routed as ``build_model`` does (``lateral_norm=True`` on a
    SlowFast arch -> ``{'slow_pathway': {'lateral_norm': True}}``), for recording."""
    backbone, head = route_settings(arch, dict(settings or {}))
    return {**backbone, **head}


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
    into the pathway settings; a lateral setting such as ``lateral_norm=True`` is routed to the
    slow pathway) or head settings (``dropout_ratio``, ``multi_class``, ...). An unknown setting is
    an ``UnknownNameError`` saying where it belongs; settings that do not form a network (depth 34
    with a ResNet-50's inflate pattern) are one ``InvalidInputError``.
    ``device='meta'`` gives shapes and key lists without allocating any weight.
    """
    arch = name if isinstance(name, Arch) else get_arch(name)
    backbone_overrides, head_overrides = route_settings(arch, overrides)
    head_cfg = {**arch.head, **head_overrides}
    with torch.device(device) if device is not None else contextlib.nullcontext():
        try:
            backbone = build_backbone(arch, **backbone_overrides)
        except (ValueError, TypeError, IndexError, KeyError, AssertionError) as e:
            raise InvalidInputError(f"{arch.name} with {format_settings(backbone_overrides)}: these "
                                    f"settings do not form a network ({e})") from None
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
