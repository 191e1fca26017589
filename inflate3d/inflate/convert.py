"""Conversion between naming schemes, always through the native (mmaction2) names.

load -> map names to native (table) -> structural steps (head columns, BN counters, lateral norm)
-> check against the architecture (strict shapes) -> map names to the target scheme -> save.
Every key is accounted for: mapped, or deliberately dropped with a note; anything else is an error.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import Inflate3dError, InvalidInputError, UnknownNameError
from ..records import Record
from ..slowfast.archs import ARCHS, Arch, setting_of, state_dict_shapes
from .detect import ArchInfo, detect_scheme, infer_arch, strip_net
from .facts import facts_for
from .schemes import SCHEMES, Scheme

if TYPE_CHECKING:
    import torch

HEAD_W = "cls_head.fc_cls.weight"
HEAD_REORDERED = "head columns reordered from [slow, fast] to mmaction2's [fast, slow]"
FACTORISED_STEM = "backbone.conv1.conv.conv_s.weight"


class Conversion(Record):
    """A converted checkpoint: ``tensors`` in the target scheme, in its order (and ``native``: the
    same tensors under native names), ``key_map`` rows (source, native, target), the architecture
    the weights imply and the named arch they matched with its overrides, and notes."""

    __slots__ = ("source_scheme", "target_scheme", "two_pathways", "tensors", "key_map", "arch", "arch_name",
                 "arch_overrides", "notes", "native")

    def __init__(self, source_scheme: str, target_scheme: str, two_pathways: bool, tensors: dict[str, torch.Tensor],
                 key_map: list[tuple[str | None, str | None, str | None]], arch: ArchInfo, arch_name: str | None,
                 arch_overrides: dict, notes: list[str] | None = None,
                 native: dict[str, torch.Tensor] | None = None) -> None:
        self.source_scheme, self.target_scheme, self.two_pathways = source_scheme, target_scheme, two_pathways
        self.tensors, self.key_map, self.arch, self.arch_name = tensors, key_map, arch, arch_name
        self.arch_overrides = arch_overrides
        self.notes = [] if notes is None else notes
        self.native = {} if native is None else native


def scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        from ..names import unknown_name_message

        raise UnknownNameError(unknown_name_message("naming scheme", name, SCHEMES))
    return SCHEMES[name]


def native_names(keys, src: Scheme, two: bool, origin: str):
    """({native key: source key}, [(source key, native key or None)], [dropped source keys]):
    names only, so a lazy reader can map a file without loading it."""
    keys = list(keys)
    bare = src.name == "mmaction2" and not any(k.startswith(("backbone.", "cls_head.")) for k in keys)
    table = src.table(two, pooled=not two and src.pooled_names(keys), factorised=src.factorised_names(keys))
    if table is None:
        raise Inflate3dError(f"{origin}: {src.name} has no {'two' if two else 'one'}-pathway naming")
    # a backbone-only mmaction2 file lacks the recognizer's 'backbone.' prefix
    return _rename({k: k for k in keys}, lambda k: table.to_native(f"backbone.{k}" if bare else k),
                   f"{src.name} -> native", origin)


def to_native(tensors: Mapping[str, torch.Tensor], src: Scheme, two: bool, origin: str):
    """(native tensors, [(source key, native key or None)], notes)."""
    names, pairs, dropped = native_names(tensors, src, two, origin)
    native = {n: tensors[k] for n, k in names.items()}
    if src.name != "mmaction2" and not two and _depthwise(native):
        native = {csn_native_name(k): v for k, v in native.items()}
        pairs = [(s, csn_native_name(n) if n else n) for s, n in pairs]
    notes = [f"dropped {len(dropped)} non-weight entries ({', '.join(dropped[:4])}"
             f"{' ...' if len(dropped) > 4 else ''})"] if dropped else []
    if src.name == "caffe2":
        notes += fill_bn_counters(native)
    if two and src.head_slow_first and HEAD_W in native:
        native[HEAD_W] = swap_head_columns(native[HEAD_W], first=_slow_channels(native))
        notes.append(HEAD_REORDERED)
    return native, pairs, notes


def from_native(native: Mapping[str, torch.Tensor], dst: Scheme, two: bool, origin: str,
                pooled: bool = False):
    """``pooled``: the network pools time after its first stage (pytorchvideo numbers its blocks
    around that pool)."""
    table = dst.table(two, pooled, factorised=FACTORISED_STEM in native)
    if table is None:
        raise Inflate3dError(f"{origin}: {dst.name} has no {'two' if two else 'one'}-pathway naming; "
                             "choose another target scheme")
    notes = []
    native = dict(native)
    if two and dst.fuse_has_bn and "backbone.slow_path.conv1_lateral.conv.weight" in native \
            and "backbone.slow_path.conv1_lateral.bn.weight" not in native:
        raise Inflate3dError(f"{origin}: its laterals have no BN (lateral_norm=False), but {dst.name} "
                             "fuses with conv+BN+ReLU; the weights cannot be expressed there")
    if two and dst.head_slow_first and HEAD_W in native:
        fast = int(native[HEAD_W].shape[1]) - _slow_channels(native)
        native[HEAD_W] = swap_head_columns(native[HEAD_W], first=fast)
        notes.append("head columns reordered from mmaction2's [fast, slow] to [slow, fast]")
    if dst.name != "mmaction2" and not two and "backbone.layer1.0.conv2.0.conv.weight" in native:
        if "backbone.layer1.0.conv2.1.conv.weight" in native:
            raise Inflate3dError(f"{origin}: an ip-CSN (a 1x1x1 conv before each depthwise one) has no "
                                 f"{dst.name} naming; choose --to mmaction2")
        native = {k.replace(".conv2.0.", ".conv2."): v for k, v in native.items()}
    last_block = _last_blocks(native)
    out, pairs, dropped = _rename(native, lambda k: table.from_native(k, last_block), f"native -> {dst.name}", origin)
    if dropped:
        notes.append(f"{len(dropped)} tensors have no {dst.name} counterpart and are left out "
                     "(BN batch counters)")
    return out, pairs, notes


_CSN_CONV2 = re.compile(r"(backbone\.layer\d\.\d+\.conv2)\.(conv|bn)\.")


def _is_conv_weight(key: str, t: torch.Tensor) -> bool:
    return key.startswith("backbone.") and key.endswith("conv.weight") and t.dim() in (4, 5)


def _frame_kernels(native: Mapping[str, torch.Tensor]) -> int | None:
    """5 when every backbone conv is 5-D with one tap in time (a C2D stored 3-D), else None."""
    convs = [v for k, v in native.items() if _is_conv_weight(k, v)]
    return 5 if convs and all(v.dim() == 5 and v.shape[2] == 1 for v in convs) else None


def _depthwise(native: Mapping[str, torch.Tensor]) -> bool:
    """A CSN: its 3x3x3 convs have one input channel per group."""
    w = native.get("backbone.layer1.0.conv2.conv.weight")
    return w is not None and w.dim() == 5 and w.shape[1] == 1 and w.shape[0] > 1


def csn_native_name(key: str) -> str:
    """mmaction2 nests CSN's depthwise conv in a sequence: ``conv2.conv`` -> ``conv2.0.conv``."""
    return _CSN_CONV2.sub(r"\1.0.\2.", key)


def _rename(tensors: Mapping[str, torch.Tensor], mapper, direction: str, origin: str):
    """(renamed tensors, [(old, new or None)], [dropped keys]); any key the table does not know
    is an error that lists the keys."""
    out: dict[str, torch.Tensor] = {}
    pairs, unmapped, dropped = [], [], []
    for key, t in tensors.items():
        ok, new = mapper(key)
        if not ok:
            unmapped.append(key)
            continue
        pairs.append((key, new))
        if new is None:
            dropped.append(key)
        else:
            out[new] = t
    if unmapped:
        raise Inflate3dError(f"{origin}: {len(unmapped)} keys have no {direction} mapping: "
                             f"{', '.join(unmapped[:6])}{' ...' if len(unmapped) > 6 else ''}")
    return out, pairs, dropped


def swap_head_columns(w: torch.Tensor, *, first: int) -> torch.Tensor:
    """Move the first ``first`` input columns of a linear weight (O, I) to the end: [A, B] -> [B, A].
    A permutation of columns, never a renaming: the classifier must see its features in order.
    A shape record (``inspect``'s ``TensorMeta``) keeps its shape."""
    if not hasattr(w, "untyped_storage"):
        return w
    import torch

    return torch.cat((w[:, first:], w[:, :first]), dim=1)


def fill_bn_counters(native: dict[str, torch.Tensor]) -> list[str]:
    """Caffe2 has no num_batches_tracked; native BNs get 0, as a freshly built BN has."""
    added = 0
    for key in [k for k in native if k.endswith(".bn.running_mean")]:
        counter = key[: -len("running_mean")] + "num_batches_tracked"
        if counter not in native:
            native[counter] = _zero_counter(native[key])
            added += 1
    return [f"set num_batches_tracked = 0 for {added} BN layers (Caffe2 does not store it)"] if added else []


def _zero_counter(like):
    """A BN's zero batch counter: a tensor, or a shape record when ``like`` is one (``inspect``)."""
    if not hasattr(like, "untyped_storage"):
        return type(like)((), "int64")
    import torch

    return torch.zeros((), dtype=torch.int64)


def slow_channels(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Output channels of the slow pathway (its last conv), from native key -> shape."""
    convs = [k for k in shapes if re.fullmatch(r"backbone\.slow_path\.layer4\.\d+\.conv[23]\.conv\.weight", k)]
    last = max(convs, key=lambda k: (int(k.split(".")[3]), k))
    return int(shapes[last][0])


def _slow_channels(native: Mapping[str, torch.Tensor]) -> int:
    return slow_channels({k: tuple(v.shape) for k, v in native.items()})


def _last_blocks(native: Mapping[str, torch.Tensor]) -> dict[int, int]:
    last: dict[int, int] = {}
    for k in native:
        if m := re.match(r"backbone\.slow_path\.layer(\d)\.(\d+)\.", k):
            last[int(m[1])] = max(last.get(int(m[1]), 0), int(m[2]))
    return last


def match_arch(native: Mapping[str, torch.Tensor], info: ArchInfo, origin: str,
               name: str | None = None, settings: Mapping | None = None) -> tuple[Arch, dict]:
    """The named architecture (plus the fewest overrides) whose keys and shapes are exactly these,
    and whose settings agree with the facts the file states (``info.facts``, ``--set`` included).

    With ``name`` given (or named by the file's metadata), only that one is tried, and a mismatch is
    an error with its reason. Facts that no candidate has become overrides; when several named
    architectures fit and nothing in the file tells them apart, the choice is a stated convention
    (a note on ``info``). With ``settings`` (the complete settings), only that arch plus exactly
    those settings is tried."""
    shapes = {k: tuple(v.shape) for k, v in native.items()}
    if settings:
        return _match_settings(shapes, info, origin, name, dict(settings))
    head = {"num_classes": info.num_classes}
    named_by = "--arch"
    if not name and "arch" in info.facts and info.facts["arch"].value in ARCHS:
        name, named_by = info.facts["arch"].value, info.facts["arch"].source
    if name and name not in ARCHS:
        from ..names import unknown_arch_message

        raise UnknownNameError(unknown_arch_message(name, ARCHS))
    candidates = [ARCHS[name]] if name else \
        [a for a in ARCHS.values() if a.family == info.family and a.depth == info.depth]
    required = {k: f.value for k, f in info.facts.items() if k != "arch" and not k.startswith("non_local_cfg.")}
    if info.family == "tsm":  # compare without shift wrappers: 2D names have none
        plain = {strip_net(k): v for k, v in shapes.items()}
        place = info.pathways["backbone"]["shift_place"]
        for arch in candidates:  # --arch c2d_r50 names mmaction2's C2D: the same 2-D keys as a TSN
            for overrides in ({}, {"shift_place": place}) if arch.family == "tsm" else ({},):
                # what the file or --set states (segments, shift_div: no weight carries them)
                full = merge_settings(overrides, {k: v for k, v in required.items()
                                                  if setting_of(arch, k, overrides) != v})
                if {strip_net(k): v for k, v in state_dict_shapes(arch, **head, **full).items()} == plain:
                    return arch, full
        raise Inflate3dError(f"{origin}: keys and shapes match no TSM architecture of depth {info.depth}")
    if info.family == "slowfast":
        # a named arch is taken as it is: fusion with BN onto one without is refused below
        norm = {"lateral_norm": True} if info.lateral_norm and not (name and named_by == "--arch") else {}
        slow, fast = info.pathways["slow"], info.pathways["fast"]
        norm = {**norm, **_non_local(slow, info.facts)}
        options = [{"slow_pathway": norm} if norm else {},
                   {"slow_pathway": {**norm, "inflate": slow["inflate"]}, "fast_pathway": {"inflate": fast["inflate"]}}]
        candidates = [a for a in candidates if name or info.fusion_kernel is None
                      or a.backbone["slow_pathway"]["fusion_kernel"] == info.fusion_kernel]
    else:
        single = info.pathways["backbone"]
        style = single["inflate_style"] if single["inflate_style"] != "mixed" else single["inflate_styles"]
        width = {"base_channels": single["base_channels"]} if single["base_channels"] != 64 else {}
        width.update(_non_local(single, info.facts))
        options = [{**width}, {"conv1_kernel": single["conv1_kernel"], **width},
                   {"conv1_kernel": single["conv1_kernel"], "inflate": single["inflate"],
                    "inflate_style": style, **width}]
    for overrides in options:  # fewest overrides first
        fits = []
        for arch in candidates:
            stem = overrides.get("conv1_kernel", arch.backbone.get("conv1_kernel"))
            if info.family == "resnet3d" and tuple(stem) != tuple(single["conv1_kernel"]):
                continue  # cannot match: skip the build
            extra = {k: v for k, v in required.items() if setting_of(arch, k, overrides) != v}
            full = merge_settings(overrides, extra)
            if state_dict_shapes(arch, **head, **full) != shapes:
                continue
            fits.append((len(extra), arch, full))
        if fits:
            best = min(n for n, _, _ in fits)
            chosen = [(a, o) for n, a, o in fits if n == best]
            if len(chosen) > 1 and not name:
                info.notes.append(
                    f"the weights fit {', '.join(a.name for a, _ in chosen)} alike, and nothing in the file "
                    f"tells them apart (they differ in temporal strides or pools, which weights do not carry); "
                    f"convention: {chosen[0][0].name}, the first registered; override with --arch")
            return chosen[0]
    if name and named_by == "--arch" and info.family == "slowfast" and info.lateral_norm:
        raise Inflate3dError(f"{origin}: its laterals have BN (fast->slow fusion is conv+BN+ReLU, as in "
                             f"PySlowFast and pytorchvideo), which {name} does not have; name no architecture "
                             "to let inflate3d infer the lateral-norm variant, or add the setting "
                             "slow_pathway.lateral_norm=true")
    raise Inflate3dError(f"{origin}: keys and shapes match no named architecture"
                         f"{' ' + name if name else ''} (depth {info.depth}, {info.family})")


def _match_settings(shapes, info: ArchInfo, origin: str, name: str | None, settings: dict) -> tuple[Arch, dict]:
    from ..settings import format_settings

    candidates = [ARCHS[name]] if name else \
        [a for a in ARCHS.values() if a.family == info.family and a.depth == info.depth]
    for arch in candidates:
        expected = state_dict_shapes(arch, num_classes=info.num_classes, **settings)
        if info.family == "tsm":
            expected, got = {strip_net(k): v for k, v in expected.items()}, {strip_net(k): v for k, v in shapes.items()}
        else:
            got = shapes
        if expected == got:
            return arch, settings
    what = name or f"any {info.family} architecture of depth {info.depth}"
    raise InvalidInputError(f"{origin}: keys and shapes do not match {what} with {format_settings(settings)}")


def _non_local(pathway: Mapping, facts: Mapping) -> dict:
    """The non-local settings of a pathway: where the blocks are (from the names), their maths (facts)."""
    pattern = pathway.get("non_local")
    if not pattern or not any(any(stage) for stage in pattern):
        return {}
    cfg = {k.split(".", 1)[1]: f.value for k, f in facts.items() if k.startswith("non_local_cfg.")}
    if pathway.get("non_local_out_bias"):
        cfg["out_bias"] = True
    return {"non_local": pattern, "non_local_cfg": cfg}


def merge_settings(base: Mapping, extra: Mapping) -> dict:
    """Overrides plus dotted settings (``slow_pathway.lateral_norm``) nested into their pathway."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in extra.items():
        head, _, leaf = key.partition(".")
        if leaf:
            out[head] = {**out.get(head, {}), leaf: value}
        else:
            out[key] = value
    return out


def pools_after_first_stage(arch: Arch, overrides: Mapping) -> bool:
    """Does this one-pathway network pool time after layer1 (pytorchvideo's ``blocks.2``)?"""
    return arch.family == "resnet3d" and bool(setting_of(arch, "with_pool2", overrides))


def convert(tensors: Mapping[str, torch.Tensor], *, source: str | None, target: str,
            origin: str, arch: str | None = None, config: str | None = None,
            metadata: Mapping[str, str] | None = None, settings: Mapping | None = None) -> Conversion:
    """Rename ``tensors`` from their scheme (detected; ``source`` checks it, and names it where the
    keys cannot tell) to ``target`` through the native names, checked against the architecture
    (inferred, or ``arch``). ``config``: the training config the file carries (PySlowFast's
    ``cfg``); ``metadata``: its inflate3d metadata; ``settings``: ``--set`` values. They state
    what the weights cannot. A 2D ResNet is converted only as a TSM network's weights: with
    ``source='torchvision'`` or a ``tsm_*`` arch; otherwise it is an error that points to
    inflation."""
    try:
        detected, two = detect_scheme(tensors.keys(), origin)
    except Inflate3dError:
        if not source:
            raise
        detected, two = source, scheme(source).single is None  # --from, where the keys cannot tell
    if detected == "torchvision3d" and tensors["conv1.weight"].dim() == 4:
        detected = "torchvision"  # 2D names: a TSM network (TSN names)
        if source != "torchvision" and not (arch or "").startswith("tsm_"):
            from .resnet2d import describe_2d

            raise InvalidInputError(f"{origin}: is a 2D {describe_2d(tensors) or 'ResNet'}, not a video "
                                    "checkpoint; inflate it to make a 3D network, or convert it as a TSM "
                                    "network's 2D weights by naming a tsm_* architecture or the "
                                    "torchvision source scheme")
    if source and source != detected:
        raise Inflate3dError(f"{origin}: given as {source}, but its keys are {detected}'s "
                             f"(e.g. {next(iter(tensors))}); name no source scheme or fix it")
    src = scheme(detected)
    dst = scheme(target)
    native, in_pairs, notes = to_native(tensors, src, two, origin)
    if arch in ARCHS and ARCHS[arch].backbone.get("conv_2d") and _frame_kernels(native) == 5:
        native = {k: v.squeeze(2) if _is_conv_weight(k, v) else v for k, v in native.items()}
        notes.append(f"conv kernels squeezed from 5-D (T=1) to 2-D: {arch} stores them 2-D and runs them "
                     "frame by frame (the same maths)")
    info = infer_arch(native, origin)
    info.facts = facts_for(info, scheme=src.name, two=two,
                           names_pool2=src.pooled_names(tensors) if src.single_pooled and not two else None,
                           config=config, metadata=dict(metadata or {}), settings=dict(settings or {}))
    arch_obj, overrides = match_arch(native, info, origin, arch)
    notes += [f"assumed {k}={f.value}: {f.source}" for k, f in info.facts.items() if f.assumed]
    # order as the native network does, so every target file is laid out like the model
    order = state_dict_shapes(arch_obj, num_classes=info.num_classes, **overrides)
    if info.family == "tsm":  # place the shift wrappers where the architecture has them
        by_plain = {strip_net(k): v for k, v in native.items()}
        native = {k: by_plain[strip_net(k)] for k in order}
    else:
        native = {k: native[k] for k in order}
    if arch_obj.backbone.get("conv_2d") and dst.name not in ("mmaction2", "torchvision", "tsm"):
        native = {k: v.unsqueeze(2) if _is_conv_weight(k, v) else v for k, v in native.items()}
        notes.append(f"conv kernels unsqueezed to 5-D (T=1): {dst.name} stores C2D's convs 3-D")
    out, out_pairs, out_notes = from_native(native, dst, two, origin,
                                            pooled=pools_after_first_stage(arch_obj, overrides))
    to_target = dict(out_pairs)
    key_map = [(s, n, to_target.get(n) if n else None) for s, n in in_pairs]
    return Conversion(src.name, dst.name, two, out, key_map, info, arch_obj.name, overrides,
                      notes + out_notes + info.notes, native)
