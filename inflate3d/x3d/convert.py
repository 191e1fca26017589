"""X3D conversion between mmaction2, PySlowFast and pytorchvideo, always through the native names.

load -> rename to native (table) -> structural steps to native (head reshape, identity shortcut BN)
-> match a named X3D (strict shapes) -> steps to the target (reshape, BN fold) -> rename -> the
target's own key order. Every key is mapped or reported; a key no row knows is an error.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable

from ..errors import CHECK_FAILED, Inflate3dError, InvalidInputError
from ..inflate.convert import Conversion
from ..inflate.convert import from_native as rename_from_native
from ..inflate.convert import native_names as rename_to_native
from ..inflate.detect import ArchInfo
from ..slowfast.archs import ARCHS, state_dict_shapes
from . import archs as x3d_archs
from .detect import detect_scheme  # noqa: F401 (a hook)
from .schemes import SCHEMES, STEM_KEYS
from .steps import (BN_EPS, BN_FIELDS, FC1, fc1_from_conv, fc1_to_conv, fold_shortcut_bn,
                    insert_identity_bn, is_identity_bn, peer_order, width_keeping_shortcuts)

if TYPE_CHECKING:  # torch-free to import: ``inspect`` describes X3D files from shape records
    import torch

_LAYER_BLOCK = re.compile(r"backbone\.layer(\d)\.(\d+)\.")


class X3DConversion(Conversion):
    """``Conversion``, plus the proof for tensors that round-trip in function but not in bits:
    ``round_trip_in_function(expected, back, differ)`` checks them or raises; ``None`` when every
    tensor must round-trip bit for bit."""

    __slots__ = ("round_trip_in_function",)

    def __init__(self, *args, round_trip_in_function: Callable[[Mapping, Mapping, list], str] | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.round_trip_in_function = round_trip_in_function


def native_names(keys, scheme_name: str, origin: str) -> dict[str, str]:
    """{native key: file key}, names only (``diff`` reads tensors lazily)."""
    return rename_to_native(keys, SCHEMES[scheme_name], False, origin)[0]


def _blocks_without_shortcut_bn(native: Mapping[str, torch.Tensor]) -> list[str]:
    return [k[: -len("downsample.conv.weight")] for k in native if k.endswith(".downsample.conv.weight")
            and f"{k[: -len('conv.weight')]}bn.weight" not in native]


def to_native(tensors: Mapping[str, torch.Tensor], scheme_name: str, origin: str):
    """(native tensors, [(source key, native key or None)], notes)."""
    names, pairs, dropped = rename_to_native(tensors, SCHEMES[scheme_name], False, origin)
    native = {n: tensors[k] for n, k in names.items()}
    notes = [f"dropped {len(dropped)} entries with no native counterpart ({', '.join(dropped[:4])})"] if dropped else []
    if scheme_name != "mmaction2" and FC1 in native:
        try:
            native[FC1] = fc1_from_conv(native[FC1])
        except ValueError as e:
            raise Inflate3dError(f"{origin}: head 2048-wide layer: {e}") from None
        notes.append(f"head: {_FC1_NAMES[scheme_name]} (1x1x1 conv) reshaped to mmaction2's cls_head.fc1 (Linear)")
    if scheme_name == "pytorchvideo":
        blocks = _blocks_without_shortcut_bn(native)
        if blocks:
            native = insert_identity_bn(native, blocks)
            notes.append(f"pytorchvideo has no shortcut BN where a block keeps its width ({_names(blocks)}); "
                         f"an identity BN was inserted there (weight 1, bias 0, mean 0, var 1-eps, eps {BN_EPS})")
    return native, pairs, notes


_FC1_NAMES = {"pyslowfast": "head.lin_5", "pytorchvideo": "blocks.5.pool.post_conv"}


def _names(blocks) -> str:
    return ", ".join(b.rstrip(".") for b in blocks)


def from_native(native: Mapping[str, torch.Tensor], target: str, origin: str):
    """(target tensors in the target's own order, [(native key, target key or None)], notes,
    blocks whose shortcut BN was folded (not identity))."""
    native = dict(native)
    notes, folded = [], []
    if target != "mmaction2":
        if FC1 in native:
            native[FC1] = fc1_to_conv(native[FC1])
            notes.append(f"head: mmaction2's cls_head.fc1 (Linear) reshaped to {_FC1_NAMES[target]} (1x1x1 conv)")
        native = {k: native[k] for k in peer_order(native)}
    if target == "pytorchvideo":
        blocks = width_keeping_shortcuts({k: tuple(v.shape) for k, v in native.items()})
        folded = [p for p in blocks if f"{p}downsample.bn.weight" in native and not is_identity_bn(
            {f: native[f"{p}downsample.bn.{f}"] for f in BN_FIELDS[:4]})]
        native = fold_shortcut_bn(native, blocks)
        if folded:
            notes.append(f"pytorchvideo has no shortcut BN where a block keeps its width ({_names(folded)}): it "
                         f"was folded into the shortcut conv and conv3.bn.bias (exact in eval mode, eps {BN_EPS}); "
                         "converting back gives an identity BN there, equal in function, not in bits")
        elif blocks:
            notes.append(f"the shortcut BN of {_names(blocks)} is the identity (as converted from pytorchvideo) "
                         "and is left out: pytorchvideo has none there")
    out, pairs, more = rename_from_native(native, SCHEMES[target], False, origin)
    return out, pairs, notes + more, folded


def match_arch(native: Mapping[str, torch.Tensor], origin: str, name: str | None = None, *,
               config: str | None = None):
    """(Arch, overrides, num_classes, notes): the named X3D whose keys and shapes are exactly these.
    Where several have them (XS, S, M), PySlowFast's cfg names the one whose clip it trained on."""
    shapes = {k: tuple(v.shape) for k, v in native.items()}
    num_classes = shapes["cls_head.fc2.weight"][0] if "cls_head.fc2.weight" in shapes else None
    overrides = {"fc1_bias": True} if "cls_head.fc1.bias" in shapes else {}
    if name is not None and (name not in ARCHS or ARCHS[name].family != x3d_archs.FAMILY):
        raise Inflate3dError(f"--arch: {name!r} is not an X3D architecture; choose one of "
                             f"{', '.join(x3d_archs.ORIGINS)}")
    candidates = [ARCHS[name]] if name else [ARCHS[n] for n in x3d_archs.ORIGINS]
    matches = [a for a in candidates if state_dict_shapes(a, num_classes=num_classes, **overrides) == shapes]
    if not matches:
        raise Inflate3dError(f"{origin}: keys and shapes match no X3D architecture{' ' + name if name else ''} "
                             f"(blocks per stage {stage_blocks(shapes)}, stem width "
                             f"{shapes.get('backbone.conv1_s.conv.weight', ('?',))[0]}); see `inflate3d archs`")
    notes = []
    by_cfg = _by_clip(matches, config) if len(matches) > 1 else None
    if by_cfg is not None:
        chosen, why = by_cfg
        notes.append(f"{', '.join(a.name for a in matches)} have the same weights; {chosen.name} by the checkpoint "
                     f"cfg ({why}); pass --arch for another")
    elif len(matches) > 1:
        chosen = next((a for a in matches if a.name == x3d_archs.SAME_WEIGHTS_DEFAULT), matches[0])
        others = [a.name for a in matches if a is not chosen]
        notes.append(f"{', '.join(a.name for a in matches)} have the same weights (they differ only in the input "
                     f"clip: {', '.join(f'{a.name} ' + 'x'.join(map(str, a.clip)) for a in matches)}); "
                     f"named {chosen.name} by convention: pass --arch {' or --arch '.join(others)} for another")
    else:
        chosen = matches[0]
    return chosen, overrides, num_classes, notes


def _by_clip(matches, config: str | None):
    """(the arch, why) when PySlowFast's cfg names the clip of exactly one of ``matches``: its
    DATA.NUM_FRAMES, and DATA.TRAIN_CROP_SIZE where it records one; else None."""
    if not config:
        return None
    from ..io.yacs_yaml import read_scalars

    cfg = read_scalars(config)
    frames, crop = cfg.get("DATA.NUM_FRAMES"), cfg.get("DATA.TRAIN_CROP_SIZE")
    if type(frames) is not int:
        return None
    fits = [a for a in matches if a.clip[0] == frames and (type(crop) is not int or a.clip[1] == crop)]
    why = f"DATA.NUM_FRAMES={frames}" + (f", DATA.TRAIN_CROP_SIZE={crop}" if type(crop) is int else "")
    return (fits[0], why) if len(fits) == 1 else None


def stage_blocks(shapes: Mapping) -> tuple[int, ...]:
    counts = [0, 0, 0, 0]
    for k in shapes:
        if m := _LAYER_BLOCK.match(k):
            counts[int(m[1]) - 1] = max(counts[int(m[1]) - 1], int(m[2]) + 1)
    return tuple(counts)


def convert(tensors: Mapping[str, torch.Tensor], *, source: str | None, target: str, origin: str,
            arch: str | None = None, config: str | None = None, metadata: Mapping[str, str] | None = None,
            settings: Mapping | None = None) -> X3DConversion:
    """``arch`` (``--arch``, or the one the file's ``metadata`` records) or else ``config``
    (PySlowFast's cfg) settles what the weights do not: X3D-XS, -S and -M have the same ones."""
    detected = detect_scheme(tensors.keys())
    if detected is None:
        raise Inflate3dError(f"{origin}: not an X3D checkpoint (no stem key such as "
                             f"{', '.join(STEM_KEYS.values())})")
    if source and source != detected:
        raise Inflate3dError(f"{origin}: --from {source}, but its keys are {detected}'s X3D names "
                             f"(e.g. {STEM_KEYS[detected]}); drop --from or fix it")
    if target not in SCHEMES:
        raise Inflate3dError(f"{origin}: X3D converts between {', '.join(SCHEMES)}; --to {target} has no X3D names")
    native, in_pairs, notes = to_native(tensors, detected, origin)
    arch_obj, overrides, num_classes, arch_notes = match_arch(native, origin, arch, config=config)
    _agreeing(settings, arch_obj, overrides)
    order = state_dict_shapes(arch_obj, num_classes=num_classes, **overrides)
    native = {k: native[k] for k in order}  # laid out like the native model
    out, out_pairs, out_notes, folded = from_native(native, target, origin)
    to_target = dict(out_pairs)
    key_map = [(s, n, to_target.get(n) if n else None) for s, n in in_pairs]
    mapped = {n for _, n in in_pairs}
    key_map += [(None, n, to_target.get(n)) for n in native if n not in mapped]  # inserted identity BNs
    if {detected, target} == {"pytorchvideo", "mmaction2"}:
        out_notes.append("pytorchvideo's head pools with a fixed kernel (its clip's T x ceil(H/32) x ceil(W/32)) and "
                     "ends in a softmax; mmaction2's pools globally and returns scores: they agree on clips "
                     "of the size the pytorchvideo model was built for")
    check = _fold_proof(detected, folded, origin) if folded else None
    info = ArchInfo(family=x3d_archs.FAMILY, depth=0, num_classes=num_classes, notes=arch_notes)
    return X3DConversion(detected, target, False, out, key_map, info, arch_obj.name, overrides,
                         notes + out_notes + arch_notes, round_trip_in_function=check)


def _fold_proof(source: str, folded: list[str], origin: str):
    """The check for a conversion that folded shortcut BNs: converting back gives identity BNs,
    so only those blocks' shortcut and conv3 BN tensors may differ from the source, and folded
    again they must be bit for bit what the source folds to (the function is the same)."""
    affected = {f"{p}downsample.conv.weight" for p in folded} | {f"{p}conv3.bn.bias" for p in folded} \
        | {f"{p}downsample.bn.{f}" for p in folded for f in BN_FIELDS}

    def check(expected: Mapping, back: Mapping, differ: list) -> str:
        import torch

        to_src = {n: s for s, n in rename_to_native(expected, SCHEMES[source], False, origin)[1] if n}
        allowed = {to_src[n] for n in affected if n in to_src}
        stray = [k for k in differ if k not in allowed]
        if stray:
            raise Inflate3dError(f"{origin}: converting back does not reproduce the source ({len(stray)} tensors "
                                 f"differ: {', '.join(stray[:3])})", exit_code=CHECK_FAILED)
        a = fold_shortcut_bn(to_native(expected, source, origin)[0], folded)
        b = fold_shortcut_bn(to_native(back, source, origin)[0], folded)
        keys = sorted(k for k in affected if k in a)
        if any(k not in b or a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k]) for k in keys):
            raise Inflate3dError(f"{origin}: the folded shortcut BN of {_names(folded)} does not convert back to "
                                 "the same function", exit_code=CHECK_FAILED)
        return (f"{len(differ)} tensors of the folded shortcut BN ({_names(folded)}) round-trip in function, "
                f"not in bits: folded again they equal the written ones bit for bit")

    return check


def _agreeing(settings, arch, overrides: Mapping) -> None:
    """``--set`` on an X3D: its settings follow from its weights (and XS, S or M from --arch), so
    a stated one must be the matched arch's (the proof restates them); any other is refused."""
    known = {"fc1_bias": False, **dict(arch.backbone), **dict(overrides)}  # the head's bias: in the weights
    for key, value in (settings or {}).items():
        if known.get(key, object()) != value:
            said = f"the weights and arch say {key}={known[key]}" if key in known else "not one a file leaves open"
            raise InvalidInputError(f"--set {key}: an X3D's settings follow from its weights and --arch; {said}")


def describe(tensors: Mapping[str, torch.Tensor], scheme_name: str, origin: str, *, prefix: str | None = None,
             config: str | None = None, metadata: Mapping[str, str] | None = None,
             settings: Mapping | None = None) -> dict:
    """What ``inspect`` shows: the matching named X3D and the facts the weights carry. The arch
    the file's ``metadata`` records, else its PySlowFast ``config``, tells X3D-XS, -S and -M
    apart; ``prefix``, the wrapper taken off the names, tells nothing more."""
    native, _, notes = to_native(tensors, scheme_name, origin)
    shapes = {k: tuple(v.shape) for k, v in native.items()}
    report: dict = {"family": "x3d"}
    try:
        arch, overrides, num_classes, arch_notes = match_arch(native, origin, (metadata or {}).get("arch"),
                                                              config=config)
    except Inflate3dError as e:  # inspection reports, it does not refuse
        arch, report["matches"], report["why"] = None, None, str(e)
    if arch is not None:
        _agreeing(settings, arch, overrides)  # a --set that disagrees is an error, as in convert
        report["matches"] = arch.name + (" with fc1_bias=True" if overrides else "")
        report["origins"] = "; ".join(f"{k} {v}" for k, v in x3d_archs.ORIGINS[arch.name].items() if v)
        notes = notes + arch_notes
    blocks = stage_blocks(shapes)
    widths = [shapes[f"backbone.layer{i}.0.conv3.conv.weight"][0] for i in range(1, 5)
              if f"backbone.layer{i}.0.conv3.conv.weight" in shapes]
    inner = [shapes[f"backbone.layer{i}.0.conv1.conv.weight"][0] for i in range(1, 5)
             if f"backbone.layer{i}.0.conv1.conv.weight" in shapes]
    se = sum(1 for k in shapes if k.endswith(".se_module.fc1.weight"))
    report.update({
        "stage_blocks": blocks, "widths": widths, "inner_widths": inner,
        "squeeze_excitation": f"{se} of {sum(blocks)} blocks",
        "head": (f"conv5 {shapes['backbone.conv5.conv.weight'][0]} -> fc1 {shapes[FC1][0]} -> "
                 f"{shapes['cls_head.fc2.weight'][0]} classes") if FC1 in shapes else "none (backbone only)",
        "notes": notes})
    return report
