"""Named architectures as data, and ``build_model``: the one way to construct a network.

Each ``Arch`` is a frozen record of everything that defines a model: the backbone family and its
settings (mmaction2's config values), the head, the input clip it was designed for and the 2D ResNet
depth it inflates from. ``build_model`` turns a name (plus keyword overrides) into a ``Recognizer3D``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, UnknownNameError
from ..records import FrozenRecord
from ..settings import format_settings
from .depths import DEPTHS, STAGE_COUNTS

if TYPE_CHECKING:  # the registry is torch-free; the networks are imported by the builders
    import torch
    from torch import nn

    from .recognizer import Recognizer3D

HEAD_SETTINGS = ("spatial_type", "dropout_ratio", "init_std", "multi_class", "label_smooth_eps",
                 "loss_weight")
# settings of the pathway that owns the laterals: given at the top level, they can only mean it
LATERAL_SETTINGS = ("lateral_norm", "lateral_inv", "fusion_kernel", "lateral_infl", "lateral_activate")


class Arch(FrozenRecord):
    """``family``: 'resnet3d' (I3D, Slow-only, C2D), 'r2plus1d', 'csn', 'slowfast' or 'tsm';
    ``backbone``: mmaction2's config values; ``clip``: T, H, W of the clip the model is trained
    on; ``origin``: where it is published (mmaction2 config, PySlowFast config, pytorchvideo hub)."""

    __slots__ = ("name", "family", "depth", "backbone", "clip", "description", "head", "origin")
    name: str
    family: str
    depth: int
    backbone: Mapping[str, Any]
    clip: tuple[int, int, int]
    description: str
    head: Mapping[str, Any]
    origin: tuple[str, ...]

    def __init__(self, name: str, family: str, depth: int, backbone: Mapping[str, Any], clip: tuple[int, int, int],
                 description: str, head: Mapping[str, Any] | None = None, origin: tuple[str, ...] = ()) -> None:
        self._set(name=name, family=family, depth=depth, backbone=backbone, clip=clip, description=description,
                  head=MappingProxyType({}) if head is None else head, origin=origin)

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
    blocks = STAGE_COUNTS[depth][1]
    return (tuple(1 for _ in range(blocks[0])),
            tuple(1 - b % 2 for b in range(blocks[1])),
            tuple(1 - b % 2 for b in range(blocks[2])),
            tuple(b % 2 for b in range(blocks[3])))


def _frozen(d: dict) -> Mapping[str, Any]:
    return MappingProxyType(d)


_MMA = "mmaction2 "
_PYSF = "PySlowFast configs/Kinetics/"
_PTV = "pytorchvideo hub "

for _d in DEPTHS:
    register(Arch(f"i3d_r{_d}", "resnet3d", _d, _frozen(dict(
        depth=_d, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2,
        inflate=i3d_inflate_pattern(_d), zero_init_residual=False)), (32, 224, 224),
        "I3D (mmaction2 32x2): 5x7x7 stem, stem conv and pool stride 2 in time, 3x1x1 in "
        "alternate blocks",
        origin=(_MMA + "i3d_imagenet-pretrained-r50_8xb8-32x2x1-100e_kinetics400-rgb",) if _d == 50 else ()))
for _d in (50, 101):
    # PySlowFast's I3D: the same weights as mmaction2's, another network: its stem keeps every
    # frame (temporal stride 1) and a 2x1x1 max pool after res2 halves time once
    register(Arch(f"i3d_r{_d}_8x8", "resnet3d", _d, _frozen(dict(
        depth=_d, conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1, with_pool2=True,
        inflate=i3d_inflate_pattern(_d), zero_init_residual=False)), (8, 224, 224),
        "I3D (PySlowFast 8x8): 5x7x7 stem with temporal stride 1, 2x1x1 pool after layer1",
        origin=(f"{_PYSF}I3D_8x8_R{_d}.yaml",) + ((_PTV + "i3d_r50",) if _d == 50 else ())))
register(Arch("i3d_r50_nl_dot_product", "resnet3d", 50, _frozen(dict(
    depth=50, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2, inflate=i3d_inflate_pattern(50),
    zero_init_residual=False, non_local=((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0)),
    non_local_cfg=dict(sub_sample=True, use_scale=False, mode="dot_product"))), (32, 224, 224),
    "I3D (mmaction2 32x2) with 5 non-local blocks (dot product, pooled after phi/g)",
    origin=(_MMA + "i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb",)))
register(Arch("c2d_r50_8x8", "resnet3d", 50, _frozen(dict(
    depth=50, conv1_kernel=(1, 7, 7), conv1_stride_t=1, pool1_stride_t=1, with_pool2=True,
    inflate=0, zero_init_residual=False)), (8, 224, 224),
    "C2D (PySlowFast 8x8): no temporal kernel, 2x1x1 pool after layer1 (5-D kernels)",
    origin=(f"{_PYSF}C2D_8x8_R50.yaml", _PTV + "c2d_r50")))
register(Arch("c2d_r50", "resnet3d", 50, _frozen(dict(
    depth=50, conv1_kernel=(1, 7, 7), conv1_stride_t=1, pool1_stride_t=1, with_pool2=True,
    inflate=0, conv_2d=True, zero_init_residual=False)), (8, 224, 224),
    "C2D (mmaction2): the PySlowFast C2D network with 2-D (4-D) kernels run frame by frame",
    origin=(_MMA + "c2d_r50-in1k-pre_8xb32-8x8x1-100e_kinetics400-rgb",)))
for _d in DEPTHS:
    register(Arch(f"slowonly_r{_d}", "resnet3d", _d, _frozen(dict(
        depth=_d, conv1_kernel=(1, 7, 7), conv1_stride_t=1, pool1_stride_t=1,
        inflate=(0, 0, 1, 1), with_pool2=False)), (8, 224, 224),
        "Slow-only: 3x1x1 in layer3-4",
        origin=(_MMA + "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb", f"{_PYSF}SLOW_8x8_R50.yaml",
                f"{_PYSF}SLOW_4x16_R50.yaml", _PTV + "slow_r50") if _d == 50 else ()))


# torchvision's own video ResNets: no stem pool; a 3x3x3 stage strides time with space
register(Arch("r3d_18", "resnet3d", 18, _frozen(dict(
    depth=18, conv1_kernel=(3, 7, 7), with_pool1=False, with_pool2=False, inflate=1,
    temporal_strides=(1, 2, 2, 2), zero_init_residual=False)), (16, 112, 112),
    "R3D-18 (torchvision): 3x3x3 convs throughout, no stem pool",
    origin=("torchvision.models.video.r3d_18",)))
register(Arch("mc3_18", "resnet3d", 18, _frozen(dict(
    depth=18, conv1_kernel=(3, 7, 7), with_pool1=False, with_pool2=False, inflate=(1, 0, 0, 0),
    zero_init_residual=False)), (16, 112, 112),
    "MC3-18 (torchvision): 3x3x3 convs in layer1, 1x3x3 after, no stem pool",
    origin=("torchvision.models.video.mc3_18",)))


register(Arch("r2plus1d_r34", "r2plus1d", 34, _frozen(dict(
    depth=34, conv1_kernel=(3, 7, 7), inflate=1, temporal_strides=(1, 2, 2, 2), norm_eps=1e-3,
    zero_init_residual=False)), (8, 112, 112),
    "R(2+1)D-34 (mmaction2): every conv factorised, shortcuts too; BN eps 1e-3",
    origin=(_MMA + "r2plus1d_r34_8xb8-8x8x1-180e_kinetics400-rgb",)))
register(Arch("r2plus1d_18", "r2plus1d", 18, _frozen(dict(
    depth=18, conv1_kernel=(3, 7, 7), inflate=1, temporal_strides=(1, 2, 2, 2), with_pool1=False,
    mid_rule="per_block", stem_mid_channels=45, factorised_shortcut=False, zero_init_residual=False)),
    (16, 112, 112), "R(2+1)D-18 (torchvision): a block's convs share one middle width, plain shortcuts, "
    "45-wide stem, no stem pool", origin=("torchvision.models.video.r2plus1d_18",)))


for _mode in ("ir", "ip"):
    register(Arch(f"{_mode}csn_r152", "csn", 152, _frozen(dict(
        depth=152, bottleneck_mode=_mode, norm_eps=1e-3, with_pool2=False, zero_init_residual=False)),
        (32, 224, 224), f"{_mode}-CSN-152 (mmaction2): depthwise 3x3x3 convs"
        + (", a 1x1x1 conv before each" if _mode == "ip" else ""),
        origin=(_MMA + f"{_mode}csn_ig65m-pretrained-r152{'-bnfrozen' if _mode == 'ip' else ''}_"
                f"{'8xb12-' if _mode == 'ir' else ''}32x2x1-58e_kinetics400-rgb",)))
register(Arch("csn_r101", "csn", 101, _frozen(dict(
    depth=101, bottleneck_mode="ir", norm_eps=1e-5, with_pool2=False, zero_init_residual=False)),
    (32, 224, 224), "ir-CSN-101 (pytorchvideo): depthwise 3x3x3 convs, BN eps 1e-5",
    origin=(_PTV + "csn_r101",)))


register(Arch("r2plus1d_r50", "r2plus1d", 50, _frozen(dict(
    depth=50, conv1_kernel=(1, 7, 7), factorised_stem=False, with_pool1=False, with_pool2=False,
    spatial_strides=(2, 2, 2, 2), temporal_strides=(1, 1, 2, 2), mid_rule="planes", temporal_first=True,
    factorised_shortcut=False, zero_init_residual=False)), (16, 224, 224),
    "R(2+1)D-50 (pytorchvideo): bottlenecks whose 3x3x3 conv is 3x1x1 then 1x3x3, no stem pool",
    origin=(_PTV + "r2plus1d_r50",)))


def _slowfast(name: str, depth: int, resample: int, speed: int, fusion_kernel: int,
              origin: tuple[str, ...] = (), clip: int = 32, slow_inflate=(0, 0, 1, 1),
              fast_inflate=(1, 1, 1, 1), extra: str = "") -> Arch:
    return register(Arch(name, "slowfast", depth, _frozen(dict(
        resample_rate=resample, speed_ratio=speed, channel_ratio=8,
        slow_pathway=dict(depth=depth, lateral=True, fusion_kernel=fusion_kernel,
                          conv1_kernel=(1, 7, 7), conv1_stride_t=1, pool1_stride_t=1,
                          inflate=slow_inflate),
        fast_pathway=dict(depth=depth, lateral=False, base_channels=8, conv1_kernel=(5, 7, 7),
                          conv1_stride_t=1, pool1_stride_t=1, inflate=fast_inflate))), (clip, 224, 224),
        f"SlowFast: slow {clip // resample} + fast {clip * speed // resample} frames, alpha {speed}, "
        f"fusion {fusion_kernel}{extra}", origin=origin))


for _d in DEPTHS:
    register(Arch(f"tsm_r{_d}", "tsm", _d, _frozen(dict(depth=_d, num_segments=8, shift_div=8,
                  shift_place="blockres")), (8, 224, 224),
                  "TSM: 2D ResNet, 1/8 + 1/8 channels shifted, 8 segments",
                  origin=(_MMA + "tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb",)
                  if _d == 50 else ()))

_slowfast("slowfast_r50_4x16", 50, 8, 8, 5, (_MMA + "slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb",
                                              f"{_PYSF}SLOWFAST_4x16_R50.yaml"))
_slowfast("slowfast_r50_8x8", 50, 4, 4, 7, (_MMA + "slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb",
                                            f"{_PYSF}SLOWFAST_8x8_R50.yaml", _PTV + "slowfast_r50"))
_slowfast("slowfast_r101_4x16", 101, 8, 8, 5)
_slowfast("slowfast_r101_8x8", 101, 4, 4, 7)
# every R101 of PySlowFast's zoo fuses with kernel 5 at alpha 4 (not the 4x16's alpha 8)
_slowfast("slowfast_r101_8x8_fk5", 101, 4, 4, 5, (f"{_PYSF}c2/SLOWFAST_8x8_R101_101_101.yaml",
                                                  _PTV + "slowfast_r101"))
# R101_50_50: temporal kernels in only the first 6 blocks of layer3 (of 23), on both pathways
_R101_50 = (1,) * 6 + (0,) * 17
_slowfast("slowfast_r101_16x8_50_50", 101, 4, 4, 5, (f"{_PYSF}c2/SLOWFAST_16x8_R101_50_50.yaml",
                                                     _PTV + "slowfast_16x8_r101_50_50"),
          clip=64, slow_inflate=(0, 0, _R101_50, 1), fast_inflate=(1, 1, _R101_50, 1),
          extra=", 3x1x1 in 6 of 23 layer3 blocks")


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
    from ..names import ARCH_NAMES

    load_all()
    # the canonical order (``names.ARCH_NAMES``), whichever family module happened to load first
    order = {name: i for i, name in enumerate(ARCH_NAMES)}
    return dict(sorted(ARCHS.items(), key=lambda item: order.get(item[0], len(order))))


def get_arch(name: str) -> Arch:
    """The registered architecture ``name`` (the other families' included); an unknown name is an
    ``UnknownNameError`` (a ``KeyError``) that suggests the closest names. A built-in arch is found
    without importing the other families (their names never shadow one: ``register`` refuses)."""
    if name in ARCHS:
        return ARCHS[name]
    archs = all_archs()
    try:
        return archs[name]
    except KeyError:
        from ..names import unknown_arch_message

        raise UnknownNameError(unknown_arch_message(name, archs)) from None


def _parameters(cls: type) -> set[str]:
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    return names


def _backbone_class(family: str) -> type:
    from .csn import ResNet3dCSN
    from .r2plus1d import ResNet2Plus1d
    from .resnet3d import ResNet3d
    from .slowfast import ResNet3dSlowFast
    from .tsm import ResNetTSM

    return {"slowfast": ResNet3dSlowFast, "tsm": ResNetTSM, "r2plus1d": ResNet2Plus1d,
            "csn": ResNet3dCSN}.get(family, ResNet3d)


def backbone_settings(arch: Arch) -> set[str]:
    """The settings a backbone of this family takes at its top level."""
    return _parameters(_backbone_class(arch.family))


def route_settings(arch: Arch, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone settings, head settings) from keyword overrides, checked against the family.

    For SlowFast, a lateral setting given at the top level (``lateral_norm=True``) goes to the
    pathway that owns the laterals (``slow_pathway``); any other pathway setting must say which
    pathway. An unknown key is an ``UnknownNameError`` that says where such a setting belongs."""
    if arch.family in BUILDERS:  # another family's builder checks its own settings
        return dict(overrides), {}
    from .pathway import ResNet3dPathway

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
    from .csn import ResNet3dCSN
    from .r2plus1d import ResNet2Plus1d
    from .resnet3d import ResNet3d
    from .slowfast import ResNet3dSlowFast
    from .tsm import ResNetTSM

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
    if arch.family == "r2plus1d":
        return ResNet2Plus1d(depth, **cfg)
    if arch.family == "csn":
        return ResNet3dCSN(depth, **cfg)
    return ResNet3d(depth, **cfg)


def head_in_channels(backbone: nn.Module) -> int:
    from .slowfast import ResNet3dSlowFast

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
    import torch

    from .heads import I3DHead, SlowFastHead
    from .recognizer import Recognizer3D
    from .tsm import TSMHead

    arch = name if isinstance(name, Arch) else get_arch(name)
    if arch.family in BUILDERS:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return BUILDERS[arch.family](arch, num_classes=num_classes, init=init, **overrides)
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
        from . import shape_table

        shapes = shape_table.lookup(ARCHS[name], num_classes, overrides) if name in ARCHS else None
        if shapes is None:  # not a configuration the shipped table holds: build it (imports torch)
            model = build_model(name, num_classes=num_classes, device="meta", init=False, **overrides)
            shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        _SHAPE_CACHE[key] = tuple(shapes.items())
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


def setting_of(arch: Arch, key: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The value a backbone setting takes in ``build_model(arch, **overrides)``: the override, the
    arch's own value, else the network's default. ``slow_pathway.lateral_norm`` reaches into a
    pathway. The defaults come from the shipped table (``shape_table``: torch-free), else from the
    networks' signatures."""
    import inspect

    from . import shape_table

    overrides = overrides or {}
    head, _, leaf = key.partition(".")
    if leaf:  # a pathway setting
        for source in (overrides.get(head) or {}, arch.backbone.get(head) or {}):
            if leaf in source:
                return source[leaf]
        for owner in (head, "pathway"):
            found, value = shape_table.default_of(owner, leaf)
            if found:
                return value
        from .pathway import ResNet3dPathway
        from .slowfast import FAST_DEFAULTS, SLOW_DEFAULTS

        pathway_defaults = {"slow_pathway": SLOW_DEFAULTS, "fast_pathway": FAST_DEFAULTS}.get(head, {})
        if leaf in pathway_defaults:
            return pathway_defaults[leaf]
        cls = ResNet3dPathway
        key = leaf
    else:
        for source in (overrides, arch.backbone):
            if key in source:
                return source[key]
        found, value = shape_table.default_of(arch.family, key)
        if found:
            return value
        cls = _backbone_class(arch.family)
    for klass in cls.__mro__:
        params = inspect.signature(klass.__init__).parameters if "__init__" in vars(klass) else {}
        if key in params and params[key].default is not inspect.Parameter.empty:
            return params[key].default
    return None
