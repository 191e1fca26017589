"""The ViT family's hooks (see ``inflate3d.families``): TimeSformer (native: mmaction2's names) and
ViViT (native: Hugging Face ``VivitModel``'s names under ``backbone.``), inflated from 2D ViTs."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import Inflate3dError, InvalidInputError
from ..io.checkpoint import metadata_json
from ..slowfast.archs import ARCHS, Arch, register, register_builder, state_dict_shapes
from .detect import detect_scheme  # noqa: F401 (a hook)

if TYPE_CHECKING:  # torch-free to import (``inspect``); building, inflating, verifying import it
    import torch

NAME = "vit"
ARCH_FAMILIES = ("timesformer", "vivit")
SCHEMES = ("mmaction2", "huggingface", "timesformer")


def build(arch, **kwargs):
    """``networks.build`` (the builder registered for both families), imported when first called."""
    from .networks import build as build_network

    return build_network(arch, **kwargs)


_ST = "TimeSformer ({}), ViT-B/16, 8 frames"
for _name, _attn, _what in (("timesformer_b", "divided_space_time", "divided space-time"),
                            ("timesformer_b_jointST", "joint_space_time", "joint space-time"),
                            ("timesformer_b_spaceOnly", "space_only", "space only")):
    if _name not in ARCHS:
        register(Arch(_name, "timesformer", 12, MappingProxyType(dict(
            num_frames=8, img_size=224, patch_size=16, embed_dims=768, num_heads=12, num_transformer_layers=12,
            feedforward_channels=3072,
            attention_type=_attn, norm_eps=1e-6)), (8, 224, 224), _ST.format(_what)))
if "vivit_b" not in ARCHS:
    register(Arch("vivit_b", "vivit", 12, MappingProxyType(dict(
        num_frames=32, image_size=224, tubelet_size=(2, 16, 16), hidden_size=768, num_hidden_layers=12,
        num_attention_heads=12, intermediate_size=3072, layer_norm_eps=1e-6, hidden_act="gelu")), (32, 224, 224),
        "ViViT-B/16x2 (joint space-time, tubelets 2x16x16), from ViT-B/16"))
    for _family in ARCH_FAMILIES:
        register_builder(_family, build)
ATTENTION_ARCH = {"divided_space_time": "timesformer_b", "joint_space_time": "timesformer_b_jointST",
                  "space_only": "timesformer_b_spaceOnly"}
# the original TimeSformer wraps its network as ``model``; a space-only one holds nothing but a ViT's
_SPACE_ONLY_HINT = ("if it is a space-only TimeSformer saved by its original code (these names, under "
                    "model.), read it as one with --from timesformer")


def read_as(scheme: str, *, source: str | None = None, config: str | None = None, arch: str | None = None) -> str:
    """The scheme to read keys of ``scheme`` as. A space-only TimeSformer saved by its original code
    has a timm ViT's names (under ``model.``): a ViT run on every frame has no parameter of its
    own. Such keys are read as one when ``--from timesformer`` says so, when the architecture
    (``--arch``, or the one the file's metadata records) is the space-only TimeSformer, or when the
    file's training config (its ``cfg``) records ``TIMESFORMER.ATTENTION_TYPE: space_only``."""
    if scheme == "timm-vit" and (source == "timesformer" or arch == ATTENTION_ARCH["space_only"]
                                 or _space_only_config(config)):
        return "timesformer"
    return scheme


def _cfg_value(config: str | None, key: str):
    """A scalar the original code's cfg records under ``key`` (``DATA.NUM_FRAMES``), else None."""
    if not config:
        return None
    from ..io.yacs_yaml import read_scalars

    return read_scalars(config).get(key)


def _cfg_frames(config: str | None) -> int | None:
    """The clip length the original code's cfg trained on, if it records one."""
    frames = _cfg_value(config, "DATA.NUM_FRAMES")
    return frames if type(frames) is int and frames > 0 else None


def _space_only_config(config: str | None) -> bool:
    return "space_only" in (config or "") and _cfg_value(config, "TIMESFORMER.ATTENTION_TYPE") == "space_only"


# --- inflate and verify ---------------------------------------------------------------------------

def prepare(source, arch: Arch, *, method: str, head, seed: int, trust_pickle: bool = False, **overrides):
    """Load the 2D ViT (any format) and plan its inflation into ``arch``; ``overrides`` change the
    video settings (``num_frames``, ``img_size`` / ``image_size``)."""
    from .inflation import ViTSource, load_source, prepare_vit

    src = source if isinstance(source, ViTSource) else load_source(source, trust_pickle=trust_pickle)
    return prepare_vit(src, arch, method=method, head=head, seed=seed, **overrides)


def verify(tensors, arch: Arch, source, *, method: str | None, origin: str, size: int = 32,
           metadata: Mapping[str, str] | None = None, trust_pickle: bool = False):
    """Strict load + static-clip proof. ``source``: a path (``verify --against``) or a ``ViTSource``.
    ``size`` is not used: the clip has the network's own frame size (its position embedding fixes it)."""
    from ..errors import CHECK_FAILED
    from .inflation import ViTSource, load_source, source_overrides
    from .proof import verify_vit

    metadata = dict(metadata or {})
    src = source if isinstance(source, ViTSource) else load_source(source, trust_pickle=trust_pickle)
    recorded = metadata.get("source_sha256") if "source_kind" in metadata else None  # an inflation's record
    if recorded and recorded != src.sha256:
        raise Inflate3dError(f"{src.label}: sha256 {src.sha256[:12]}... differs from the {recorded[:12]}... "
                             f"recorded in {origin}; this is not its source", exit_code=CHECK_FAILED)
    if "arch_overrides" in metadata:
        overrides = metadata_json(metadata, "arch_overrides", origin)
    elif "hf_config" in metadata:
        from .hf import settings_from_config

        overrides = {**dict(arch.backbone), **settings_from_config(metadata_json(metadata, "hf_config", origin), origin)[1]}
    else:
        overrides = {**dict(arch.backbone), **source_overrides(src.info, arch)}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    tensors = dict(tensors)
    scheme = detect_scheme(tensors)
    if scheme not in (None, "mmaction2"):  # e.g. a Hugging Face folder: to native names first
        tensors = {n: tensors[k] for n, k in native_names(tensors, scheme, origin).items()}
    elif not any(k.startswith(("backbone.", "cls_head.")) for k in tensors):
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
    method = method or metadata.get("method") or _tubelet_method(tensors, src, arch)
    ver = verify_vit(tensors, arch, src, method=method, overrides=overrides, origin=origin)
    if recorded:
        ver.notes.insert(0, f"source sha256 matches the metadata ({recorded[:12]}...)")
    return ver


def _tubelet_method(tensors, src, arch: Arch) -> str:
    if arch.family != "vivit":
        return "copy"
    from .kernels import tubelet_method

    w = tensors.get("backbone.embeddings.patch_embeddings.projection.weight")
    return (tubelet_method(w, src.tensors["patch_embed.proj.weight"]) if w is not None else None) or "mean"


# --- names ----------------------------------------------------------------------------------------

def _family_of(native_keys) -> str:
    return "vivit" if any(k.startswith("backbone.embeddings.") for k in native_keys) else "timesformer"


def _divided(keys) -> bool:
    return any(".temporal_" in k or ".attentions.1." in k for k in keys)


def native_names(keys, scheme: str, origin: str) -> dict[str, str]:
    """{native key: file key}; 2D ViTs: their canonical (timm) names."""
    keys = list(keys)
    if scheme.endswith("-vit"):
        return {k: k for k in keys}
    family = "vivit" if any("vivit." in k or k.startswith("backbone.embeddings.") for k in keys) or \
        (scheme == "huggingface" and not any("attention.qkv" in k for k in keys)) else "timesformer"
    divided = _divided(keys)
    out = {}
    for k in keys:
        ok, n = _to_native(family, scheme, k, divided)
        if not ok:
            raise Inflate3dError(f"{origin}: {k} has no {scheme} -> native mapping")
        if n is not None:
            out[n] = k
    return out


def _to_native(family, scheme, key, divided):
    from .schemes import to_native_key

    return to_native_key(family, scheme, key, divided)


# --- convert --------------------------------------------------------------------------------------

@dataclass
class _ArchFacts:
    num_classes: int | None
    family: str
    settings: dict
    notes: list[str] = field(default_factory=list)


@dataclass
class Conversion:
    source_scheme: str
    target_scheme: str
    two_pathways: bool
    tensors: dict
    key_map: list
    arch: _ArchFacts
    arch_name: str
    arch_overrides: dict
    notes: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)  # hidden_act, layer_norm_eps (for config.json)
    native: dict = field(default_factory=dict)  # the tensors in native names
    metadata: dict = field(default_factory=dict)  # what the weights do not carry, for the output's record
    # {name written for the source scheme: the source's own name} where they differ (transformers
    # 5's in-memory ViViT names are read, the saved ones written): the round trip compares by it
    source_names: dict = field(default_factory=dict)


def infer(native: Mapping[str, torch.Tensor], record: Mapping[str, str], origin: str,
          settings: Mapping | None = None, config: str | None = None) -> tuple[Arch, dict, _ArchFacts]:
    """The named arch and the backbone settings these native tensors need, from shapes (and the
    record for what shapes do not carry; ``config``, the original code's cfg, for the frame count
    of a space-only net); ``settings`` (``--set``) state what none does, and outrank them all (the
    shapes still have to fit)."""
    from .hf import settings_from_config

    user = dict(settings or {})
    shapes = {k: tuple(v.shape) for k, v in native.items()}
    head = shapes.get("cls_head.fc_cls.weight")
    family = _family_of(shapes)
    hf = metadata_json(record, "hf_config", origin)
    assumed: list[tuple[tuple[str, ...], str]] = []
    if hf:
        _, settings = settings_from_config(hf, origin)
    elif "arch_overrides" in record:
        settings = metadata_json(record, "arch_overrides", origin)
    else:
        settings = _settings_from_shapes(family, shapes, record, assumed, origin)
    if family == "vivit":
        arch = ARCHS["vivit_b"]
    else:
        arch = ARCHS[ATTENTION_ARCH[settings["attention_type"]]]
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    full = {**dict(arch.backbone), **settings}
    if unknown := sorted(set(user) - set(full)):
        raise InvalidInputError(f"--set {unknown[0]}: not a setting of {arch.name}; its settings are "
                                f"{', '.join(sorted(full))}")
    full = {**full, **{k: tuple(v) if isinstance(v, list) else v for k, v in user.items()}}
    frames = _cfg_frames(config) if any(keys == ("num_frames",) for keys, _ in assumed) else None
    if frames is not None and "num_frames" not in user:  # the cfg states what the space-only weights do not
        full["num_frames"] = frames
        assumed = [(keys, text) for keys, text in assumed if keys != ("num_frames",)]
        assumed.append(((), f"num_frames={frames} as the checkpoint cfg records (DATA.NUM_FRAMES)"))
    notes = [text for keys, text in assumed if not keys or not set(keys) <= set(user)]
    if user:
        notes.append(f"{', '.join(f'{k}={v}' for k, v in user.items())} as --set states")
    overrides = {k: v for k, v in full.items() if arch.backbone.get(k) != v}
    from .shapes import state_dict_shapes as computed_shapes

    num_classes = None if head is None else head[0]
    expected = computed_shapes(arch, num_classes, overrides)  # torch-free; None: only a build can tell
    if expected is None:
        try:  # the network refuses some settings (heads that do not divide the width)
            expected = state_dict_shapes(arch, num_classes=num_classes, **overrides)
        except (AssertionError, ValueError, TypeError) as e:
            raise InvalidInputError(f"{origin}: {arch.name} cannot be built with these settings ({e}); "
                                    f"{'check --set' if user else 'the file records them'}") from None
    if expected != shapes:
        bad = [k for k in set(expected) ^ set(shapes)][:3] or \
            [k for k in expected if expected[k] != shapes.get(k)][:3]
        raise Inflate3dError(f"{origin}: keys and shapes match no {family} network ({', '.join(bad)})")
    return arch, overrides, _ArchFacts(None if head is None else head[0], family, full, notes)


def _settings_from_shapes(family, shapes, record, notes, origin) -> dict:
    """The settings the shapes (and the record) give; ``notes`` gets (the settings, the words) of
    each assumption."""
    heads = record.get("num_heads")
    eps = float(record.get("layer_norm_eps", 1e-6))
    if family == "vivit":
        dims = shapes["backbone.embeddings.cls_token"][-1]
        tub = shapes["backbone.embeddings.patch_embeddings.projection.weight"][2:]
        layers = len({k.split(".")[3] for k in shapes if k.startswith("backbone.encoder.layer.")})
        n = shapes["backbone.embeddings.position_embeddings"][1] - 1
        grid = 224 // tub[1]
        if n % (grid * grid):  # not 224px frames: the largest square grid that fits
            grid = next(g for g in range(math.isqrt(n), 0, -1) if n % (g * g) == 0)
        notes.append((("image_size", "num_frames"),
                      f"frame size and count are not in the weights: assumed {grid * tub[1]}px, so "
                      f"{n // grid**2 * tub[0]} frames (a Hugging Face folder's config.json records them; "
                      "--set image_size=N,num_frames=N states them)"))
        s = {"hidden_size": dims, "num_hidden_layers": layers, "tubelet_size": tuple(tub),
             "intermediate_size": shapes["backbone.encoder.layer.0.intermediate.dense.weight"][0],
             "num_frames": n // grid ** 2 * tub[0], "image_size": grid * tub[1], "layer_norm_eps": eps,
             "hidden_act": record.get("hidden_act", "gelu")}
        key = "num_attention_heads"
    else:
        dims = shapes["backbone.cls_token"][-1]
        patch = shapes["backbone.patch_embed.projection.weight"][-1]
        grid = math.isqrt(shapes["backbone.pos_embed"][1] - 1)
        attention = "divided_space_time" if _divided(shapes) else \
            "joint_space_time" if "backbone.time_embed" in shapes else "space_only"
        s = {"embed_dims": dims, "patch_size": patch, "img_size": grid * patch, "attention_type": attention,
             "num_transformer_layers": len({k.split(".")[3] for k in shapes if ".layers." in k}),
             "feedforward_channels": next(v[0] for k, v in shapes.items() if k.endswith("ffns.0.layers.0.0.weight")),
             "norm_eps": eps}
        if "backbone.time_embed" in shapes:
            s["num_frames"] = shapes["backbone.time_embed"][1]
        else:
            notes.append((("num_frames",), "space-only: the frame count is not in the weights; 8 assumed (any "
                          "count runs; --set num_frames=N states it)"))
        key = "num_heads"
    if heads is None:
        heads = dims // 64 if dims % 64 == 0 else max(1, dims // 64)
        notes.append(((key,), f"attention heads are not in the weights: {heads} assumed (64-wide heads, as "
                              f"ViT-B); --set {key}=N states them"))
    s[key] = int(heads)
    return s


def convert(tensors, *, source: str | None, target: str, origin: str, arch: str | None = None,
            config: str | None = None, metadata: Mapping[str, str] | None = None,
            settings: Mapping | None = None) -> Conversion:
    from .schemes import from_native_key

    detected = detect_scheme(tensors.keys())
    detected = detected and read_as(detected, source=source, config=config, arch=arch)
    if detected is None:
        raise Inflate3dError(f"{origin}: not a TimeSformer or ViViT checkpoint, and {target} names only video "
                             "transformers; choose another --to")
    if detected.endswith("-vit") or _is_2d_hf(tensors):
        raise Inflate3dError(f"{origin}: a 2D ViT; make a video network from it with `inflate3d inflate "
                             f"{origin} --arch timesformer_b` (or vivit_b)"
                             + (f"; {_SPACE_ONLY_HINT}" if detected == "timm-vit" else ""))
    if source and source != detected:
        raise Inflate3dError(f"{origin}: --from {source}, but its keys are {detected}'s; drop --from or fix it")
    record = _record(origin, metadata)
    names = native_names(tensors.keys(), detected, origin)
    native = {n: tensors[k] for n, k in names.items()}
    dropped = [k for k in tensors if k not in set(names.values())]
    arch_obj, overrides, facts = infer(native, record, origin, settings, config)
    if arch and arch != arch_obj.name:
        raise Inflate3dError(f"--arch {arch}: the keys and shapes are {arch_obj.name}'s")
    order = state_dict_shapes(arch_obj, num_classes=facts.num_classes, **overrides)
    native = {k: native[k] for k in order}
    divided = facts.settings.get("attention_type") == "divided_space_time"
    with_head = facts.num_classes is not None
    out, to_target = {}, {}
    for k, v in native.items():
        ok, new = from_native_key(facts.family, target, k, divided, with_head)
        if not ok or new is None:
            raise Inflate3dError(f"{origin}: {k} has no {target} counterpart"
                                 + ("; ViViT exists in Hugging Face names only" if facts.family == "vivit" else ""))
        out[new] = v
        to_target[k] = new
    key_map = [(k, n, to_target.get(n)) for n, k in names.items()] + [(k, None, None) for k in dropped]
    notes = list(facts.notes)
    if dropped:
        notes.append(f"left out {', '.join(dropped)} (no counterpart in the native network)")
    if target == "huggingface" and facts.settings.get("attention_type") == "space_only":
        notes.append("Hugging Face's space-only TimeSformer does not average the frames: its class token "
                     "is per frame")
    conv = Conversion(detected, target, False, out, key_map, facts, arch_obj.name, overrides, notes)
    conv.facts = _facts(record, facts, origin)
    conv.metadata = {"arch_overrides": json.dumps(_jsonable(facts.settings), sort_keys=True),
                     **{k: str(v) for k, v in conv.facts.items()}}
    conv.native = native
    if detected == "huggingface":
        from .schemes import saved_name

        conv.source_names = {saved: k for k in names.values() if (saved := saved_name(k)) != k}
    if conv.source_names:
        notes.append(f"read {len(conv.source_names)} names as transformers 5 keeps them in memory "
                     f"(e.g. {next(iter(conv.source_names.values()))}); written back as save_pretrained "
                     "writes them")
    return conv


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _facts(record: Mapping[str, str], facts: _ArchFacts, origin: str) -> dict:
    hf = metadata_json(record, "hf_config", origin) or {}
    eps = facts.settings.get("norm_eps", facts.settings.get("layer_norm_eps", 1e-6))
    return {"hidden_act": hf.get("hidden_act") or record.get("hidden_act") or "gelu", "layer_norm_eps": eps}


def _record(origin: str, metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the file records beside its weights: the ``metadata`` its reader found (a ``.pth``'s
    inflate3d entry), else its safetensors metadata and a folder's config.json (headers only,
    torch-free: nothing else of a file is read)."""
    if metadata:
        return {**_record(origin), **metadata}
    from ..io.checkpoint import hf_folder, sniff_format
    from ..io.safetensors_header import read_header

    try:
        path, record = hf_folder(Path(origin))
        if sniff_format(path) != "safetensors":
            return {}
        metadata = read_header(path)[1]
    except Exception:  # noqa: BLE001 - not a path (in-memory use), not readable: nothing recorded
        return {}
    return {**metadata, **record}


def check_folder(out, *, force: bool) -> None:
    """Refuse a folder output before any work (exists without --force, not a folder, no parent)."""
    from .hf import check_folder as check

    check(Path(out), force=force)


def write_folder(out, conv_or_inflation, meta: dict, *, force: bool) -> list[str]:
    """``--to huggingface``: the folder for a conversion (``convert``) or an inflation (``inflate``)."""
    from .hf import write_folder as write

    obj = conv_or_inflation
    if hasattr(obj, "plan"):  # an inflation
        native = obj.state_dict()
        info = obj.source.info
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in obj.overrides.items()}
        facts = {"hidden_act": info.hidden_act, "layer_norm_eps": info.layer_norm_eps}
        family, origin = obj.arch.family, obj.source.label
    else:
        native, settings, facts = obj.native, obj.arch.settings, obj.facts
        family, origin = obj.arch.family, str(out)
    return write(Path(out), native, family, settings, facts, {k: str(v) for k, v in meta.items()},
                 force=force, origin=origin)


# --- inspect, diff --------------------------------------------------------------------------------

def shapes(arch_name: str, num_classes, overrides) -> dict:
    return state_dict_shapes(arch_name, num_classes=num_classes, **overrides)


def _is_2d_hf(tensors) -> bool:
    """Hugging Face ViT and ViViT share their names; the patch kernel's rank tells them apart."""
    w = next((v for k, v in tensors.items() if k.endswith("embeddings.patch_embeddings.projection.weight")), None)
    return w is not None and w.dim() == 4 and not any(".attention.attention.qkv." in k for k in tensors)


_SETTINGS_2D = ("num_heads", "layer_norm_eps", "hidden_act")  # what a 2D ViT's weights leave open


def describe(tensors, scheme: str, origin: str, *, prefix: str | None = None, config: str | None = None,
             metadata: Mapping[str, str] | None = None, settings: Mapping | None = None) -> dict:
    """``prefix``: the wrapper the loader took off every name (the original TimeSformer's ``model.``);
    ``metadata``: what the file records (a ``.pth``'s too: heads, eps); ``config`` has already
    chosen the scheme (``read_as``); ``settings``: what ``--set`` states."""
    if scheme.endswith("-vit") or (scheme == "huggingface" and _is_2d_hf(tensors)):
        from .vit2d import canonical, describe as describe2d

        if unknown := sorted(set(settings or {}) - set(_SETTINGS_2D)):
            raise InvalidInputError(f"--set {unknown[0]}: a 2D ViT leaves only {', '.join(_SETTINGS_2D)} open")
        canon, fmt, notes = canonical(tensors, origin)
        if scheme == "timm-vit" and prefix == "model.":
            notes.append(_SPACE_ONLY_HINT)
        record = {**_record(origin, metadata), **{k: str(v) for k, v in (settings or {}).items()}}
        info = describe2d(canon, fmt, origin, record, notes)
        return {"family": "2D ViT", "format": fmt, "embed_dims": info.embed_dims, "depth": info.depth,
                "patch_size": info.patch_size, "image_size": info.img_size, "num_heads": info.num_heads,
                "head_classes": info.num_classes, "notes": info.notes}
    names = native_names(tensors.keys(), scheme, origin)
    native = {n: tensors[k] for n, k in names.items()}
    arch, overrides, facts = infer(native, _record(origin, metadata), origin, settings, config)
    return {"family": facts.family, "matches": arch.name, "overrides": json.dumps(overrides, default=list),
            **{k: v for k, v in facts.settings.items()}, "head_classes": facts.num_classes, "notes": facts.notes}


def diff_inflated(a_path, b_path, *, keys: str | None = None, trust_pickle: bool = False):
    """A video transformer against the 2D ViT it came from, tensor by tensor, through the plan."""
    from .diff import diff_inflated as run

    return run(a_path, b_path, keys=keys, trust_pickle=trust_pickle)
