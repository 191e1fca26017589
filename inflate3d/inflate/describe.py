"""What a checkpoint is, as plain data: format, container, scheme, tensors, metadata, and the
architecture its keys and shapes imply. Reading only: nothing is converted or reordered."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import Inflate3dError
from ..settings import format_settings


def _pathway_json(v: dict) -> dict:
    if "shift_place" in v:  # TSM
        return {"stage_blocks": list(v["stage_blocks"]), "shift_place": v["shift_place"], "shifted_blocks": v["shifted"]}
    return {"stem_kernel": list(v["conv1_kernel"]), "stage_blocks": list(v["stage_blocks"]),
            "inflate": [list(s) for s in v["inflate"]], "inflate_style": v["inflate_style"], "width": v["base_channels"]}


def _plain(value):
    """JSON-friendly: tuples as lists, recursively."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def describe_checkpoint(path, *, source_scheme: str | None = None, trust_pickle: bool = False,
                        settings: dict | None = None) -> dict:
    """A plain dict: ``input``, ``format``, ``container``, ``prefix``, ``dropped_entries``,
    ``scheme``, ``two_d`` (e.g. 'ResNet-18 (torchvision names)' for a 2D net, else None),
    ``tensors``, ``values_by_dtype``, ``metadata`` and, for a 3D net, ``architecture`` (family,
    depth, pathways, fusion, head classes, the named arch it matches and with which settings, the
    ``facts`` the file states or implies with their source, the file's training ``config``).
    ``settings`` (``--set``) state facts the file does not carry. A checkpoint of another family
    (X3D, Swin, ViT) is described by that family (``architecture`` is its dict)."""
    from .. import families
    from ..io.load import load_checkpoint
    from .facts import facts_for
    from .convert import HEAD_REORDERED, match_arch, scheme, to_native
    from .detect import detect_scheme, infer_arch
    from .resnet2d import describe_2d

    path = Path(path)
    origin = str(path)
    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    by_dtype: Counter = Counter()
    for t in ckpt.tensors.values():
        by_dtype[str(t.dtype).replace("torch.", "")] += t.numel()
    hit = families.for_keys(ckpt.tensors)
    if hit is not None:
        family, family_scheme = hit
        architecture = families.hook(family, "describe", "inspect")(ckpt.tensors, family_scheme, origin)
        return {"input": origin, "format": ckpt.format, "container": ckpt.container, "prefix": ckpt.prefix,
                "dropped_entries": ckpt.dropped, "scheme": family_scheme, "two_pathways": False, "two_d": None,
                "tensors": len(ckpt.tensors), "values_by_dtype": dict(by_dtype), "metadata": ckpt.metadata,
                "family": getattr(family, "NAME", None),
                "architecture": _plain(architecture)}
    name, two = detect_scheme(ckpt.tensors, origin)
    two_d = describe_2d(ckpt.tensors) if name == "torchvision3d" else None
    if two_d:
        name = "torchvision"
    if source_scheme and source_scheme != name:
        what = f"its kernels are 2D (a {two_d})" if two_d else \
            f"its keys are {name}'s (e.g. {next(iter(ckpt.tensors))})"
        raise Inflate3dError(f"{origin}: given as {source_scheme}, but {what}")
    report = {"input": origin, "format": ckpt.format, "container": ckpt.container,
              "prefix": ckpt.prefix, "dropped_entries": ckpt.dropped, "scheme": name, "two_pathways": two,
              "two_d": two_d, "tensors": len(ckpt.tensors),
              "values_by_dtype": dict(by_dtype), "metadata": ckpt.metadata}
    if two_d or (name == "torchvision3d" and not any(t.dim() == 5 for t in ckpt.tensors.values())):
        return report
    src = scheme(name)
    native, _, notes = to_native(ckpt.tensors, src, two, origin)
    # inspection changes nothing: say what a conversion would do, not what was done
    notes = [("head columns are [slow, fast]; mmaction2's are [fast, slow] (converting reorders them)"
              if n == HEAD_REORDERED else n) for n in notes]
    info = infer_arch(native, origin)
    info.facts = facts_for(info, scheme=name, two=two,
                           names_pool2=src.pooled_names(ckpt.tensors) if src.single_pooled and not two else None,
                           config=ckpt.config, metadata=ckpt.metadata, settings=dict(settings or {}))
    try:
        named, settings = match_arch(native, info, origin)
        arch = {"name": named.name, "settings": format_settings(settings)}
    except Inflate3dError as e:  # inspection reports, it does not refuse
        arch = {"name": None, "why": str(e)}
    report["architecture"] = {
        "family": info.family, "depth": info.depth, "pathways": len(info.pathways),
        "lateral_norm": info.lateral_norm, "fusion_kernel": info.fusion_kernel,
        "channel_ratio": info.channel_ratio, "head_classes": info.num_classes, "matches": arch,
        "per_pathway": {p: _pathway_json(v) for p, v in info.pathways.items()},
        "facts": {k: {"value": _plain(f.value), "source": f.source} for k, f in info.facts.items()},
        "config": info.record,
        "notes": notes + info.notes}
    return report
