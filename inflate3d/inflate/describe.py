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


# buffers by their names, not parameters: what a network's parameters() counts is the rest
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked", "relative_position_index")


def _size(path: Path) -> int:
    """The bytes on disk: a file's size, or a folder's files together (a Hugging Face folder)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _plain(value):
    """JSON-friendly: tuples as lists, recursively."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_for_inspection(path, *, trust_pickle: bool = False, values: bool = False):
    """(Checkpoint, how it was read). Without ``values``, the structure alone (``io.structure``:
    torch-free, at the cost of reading headers); when only torch's loader can read the file, or
    ``values`` asks for the tensors (the NaN/Inf screen), the loader."""
    from ..io.structure import NeedsTorch, read_structure

    if not values:
        try:
            return read_structure(path), "structure"  # a pickle that needs trust needs the loader too
        except NeedsTorch:
            pass
    from ..io.load import load_checkpoint

    return load_checkpoint(path, trust_pickle=trust_pickle), "tensors"


def describe_checkpoint(path, *, source_scheme: str | None = None, trust_pickle: bool = False,
                        settings: dict | None = None, values: bool = False) -> dict:
    """A plain dict: ``input``, ``format``, ``container``, ``prefix``, ``dropped_entries``,
    ``scheme``, ``two_d`` (e.g. 'ResNet-18 (torchvision names)' for a 2D net, else None),
    ``tensors``, ``parameters`` (values outside BN statistics and index buffers), ``values_by_dtype``, ``bytes`` (the file's size), ``metadata``
    and, for a 3D net, ``architecture`` (family, depth, pathways, fusion, head classes, the named
    arch it matches and with which settings, the ``facts`` the file states or implies with their
    source, the file's training ``config``). ``settings`` (``--set``) state facts the file does
    not carry. A checkpoint of another family (X3D, Swin, ViT) is described by that family
    (``architecture`` is its dict). Only the structure is read unless ``values``: then every
    tensor is loaded and ``non_finite`` lists the tensors holding NaN or Inf."""
    from .. import families
    from .facts import facts_for
    from .convert import HEAD_REORDERED, match_arch, scheme, to_native
    from .detect import detect_scheme, infer_arch

    path = Path(path)
    origin = str(path)
    ckpt, read = read_for_inspection(path, trust_pickle=trust_pickle, values=values)
    by_dtype: Counter = Counter()
    for t in ckpt.tensors.values():
        by_dtype[str(t.dtype).replace("torch.", "")] += t.numel()
    common = {"input": origin, "format": ckpt.format, "container": ckpt.container, "prefix": ckpt.prefix,
              "dropped_entries": ckpt.dropped, "tensors": len(ckpt.tensors),
              "parameters": sum(t.numel() for k, t in ckpt.tensors.items() if not k.endswith(BUFFER_SUFFIXES)),
              "values_by_dtype": dict(by_dtype), "bytes": _size(path), "read": read}
    if values:
        common["non_finite"] = ckpt.non_finite  # the loader screened every value once
    hit = families.for_keys(ckpt.tensors)
    if hit is not None:
        family, family_scheme = hit
        read_as = getattr(family, "read_as", None)  # what --from, the cfg or the recorded arch say the keys are
        if read_as is not None:
            family_scheme = read_as(family_scheme, source=source_scheme, config=ckpt.config,
                                    arch=ckpt.metadata.get("arch"))
        if source_scheme and source_scheme != family_scheme:
            raise Inflate3dError(f"{origin}: given as {source_scheme}, but its keys are {family_scheme}'s "
                                 f"(e.g. {next(iter(ckpt.tensors))})")
        describe = families.hook(family, "describe", "inspect")
        record = {"prefix": ckpt.prefix, "config": ckpt.config, "metadata": ckpt.metadata,
                  "settings": dict(settings or {})}
        try:
            architecture = describe(ckpt.tensors, family_scheme, origin, **record)
        except (AttributeError, TypeError):  # this scheme's renaming computes on tensors (HF's q, k, v)
            if read != "structure":
                raise
            from ..io.load import load_checkpoint

            architecture = describe(load_checkpoint(path, trust_pickle=trust_pickle).tensors, family_scheme, origin,
                                    **record)
        return {**common, "scheme": family_scheme, "two_pathways": False, "two_d": None, "metadata": ckpt.metadata,
                "family": getattr(family, "NAME", None), "architecture": _plain(architecture)}
    name, two = detect_scheme(ckpt.tensors, origin)
    two_d = None
    if name == "torchvision3d":  # torchvision's names: a 2D ResNet, or one with 5-D kernels
        from .resnet2d import describe_2d

        two_d = describe_2d(ckpt.tensors)
    if two_d:
        name = "torchvision"
    if source_scheme and source_scheme != name:
        what = f"its kernels are 2D (a {two_d})" if two_d else \
            f"its keys are {name}'s (e.g. {next(iter(ckpt.tensors))})"
        raise Inflate3dError(f"{origin}: given as {source_scheme}, but {what}")
    report = {**common, "scheme": name, "two_pathways": two, "two_d": two_d, "metadata": ckpt.metadata}
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
