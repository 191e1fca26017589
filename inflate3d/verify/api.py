"""Verify a checkpoint as found: in any scheme, its architecture from the caller, its record
(metadata) or its keys and shapes, then strict load and the boring-video check."""
from __future__ import annotations

from collections.abc import Mapping

from ..errors import CheckFailedError, InvalidInputError
from ..settings import format_settings, merge_settings, read_recorded_settings


def verify_checkpoint(tensors: Mapping, source, *, origin: str, metadata: Mapping[str, str] | None = None,
                      arch: str | None = None, method: str | None = None, settings: Mapping | None = None,
                      size: int = 32, trust_pickle: bool = False, frames: int | None = None):
    """A ``Verification`` of ``tensors`` against the 2D ``source`` (a path, spec, state dict or
    module). ``metadata`` is the file's record (arch, arch_settings, method, head, source_sha256):
    a recorded sha256 (of the file, or of its tensors in another container) that differs from the
    source's is a ``CheckFailedError``. An arch of another family (X3D, Swin, ViT) is verified by
    that family (``frames``: the clip length a Video Swin check uses)."""
    from .. import families
    from ..inflate.convert import match_arch, scheme, to_native
    from ..inflate.detect import detect_scheme, infer_arch
    from ..inflate.resnet2d import describe_2d
    from ..inflate.sources import resolve_source
    from ..slowfast.archs import get_arch, normalize_settings
    from . import verify_inflated

    meta = dict(metadata or {})
    arch_name = arch or meta.get("arch")
    family = families.for_arch(get_arch(arch_name)) if arch_name else None
    if family is None and arch_name is None and families.for_keys(tensors) is not None:
        raise InvalidInputError(f"{origin}: no architecture in its metadata; name one (inflate3d archs)")
    if family is not None:
        if settings:  # it was dropped without a word
            raise InvalidInputError(f"--set {next(iter(settings))}: a {family.NAME} checkpoint is verified with the "
                                    "settings its record holds; state them with `inflate3d convert --set` first")
        return families.hook(family, "verify", "verification")(
            tensors, get_arch(arch_name), source, method=method or meta.get("method"), origin=origin,
            size=size, metadata=meta, trust_pickle=trust_pickle, **({"frames": frames} if frames else {}))
    if frames:
        raise InvalidInputError("frames (--frames) applies to Video Swin checkpoints; ResNet clips are "
                                "chosen from the architecture")
    name, two = detect_scheme(tensors, origin)
    if name == "torchvision3d" and (two_d := describe_2d(tensors)):
        raise InvalidInputError(f"{origin}: is a 2D {two_d}, not an inflated 3D checkpoint; inflate it "
                                "first, then verify the output against it")
    notes = []
    if name != "mmaction2":
        tensors, _, notes = to_native(tensors, scheme(name), two, origin)
    elif not any(k.startswith("backbone.") for k in tensors):  # a backbone-only mmaction2 file
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
    recorded = read_recorded_settings(meta.get("arch_settings", ""))
    if arch_name:
        arch_obj = get_arch(arch_name)
        chosen = merge_settings(recorded if arch_name == meta.get("arch") else {},
                                normalize_settings(arch_obj, settings))
    else:  # no record: the architecture the keys and shapes imply
        arch_obj, chosen = match_arch(tensors, infer_arch(tensors, origin), origin)
        chosen = merge_settings(chosen, normalize_settings(arch_obj, settings))
        notes.append(f"architecture {arch_obj.name}{' with ' + format_settings(chosen) if chosen else ''} "
                     "inferred from the keys and shapes (no record in the file)")
    src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle)
    identity = source_identity(meta, src, origin)
    head = meta.get("head")
    ver = verify_inflated(tensors, arch_obj, src.tensors, depth=src.depth,
                          method=method or meta.get("method"), origin=origin, size=size, settings=chosen,
                          head_from_2d=None if head is None else head == "imagenet")
    ver.settings = chosen
    ver.scheme = name
    ver.notes[:0] = notes
    if identity:
        ver.notes.insert(0, identity)
    return ver


def source_identity(meta: Mapping[str, str], src, checkpoint: str) -> str | None:
    """Is ``src`` the recorded 2D source? Its file bytes, or its tensors (the same weights in
    another container) must match the record; None when nothing is recorded."""
    by_file, by_tensors = meta.get("source_sha256"), meta.get("source_tensors_sha256")
    if by_file and by_file == src.sha256:
        return f"source sha256 matches the metadata ({by_file[:12]}...)"
    if by_tensors and by_tensors == src.tensors_sha256:
        return f"source tensors match the metadata (tensors sha256 {by_tensors[:12]}...; another container)"
    if by_file or by_tensors:
        raise CheckFailedError(f"{src.label}: sha256 {src.sha256[:12]}... (tensors {src.tensors_sha256[:12]}...) "
                               f"differs from the {(by_file or by_tensors)[:12]}... recorded in {checkpoint}; "
                               "this is not its source")
    return None
