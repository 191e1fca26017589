"""Verify a checkpoint as found: in any scheme, its architecture from the caller, its record
(metadata) or its keys and shapes, then strict load and the boring-video check."""
from __future__ import annotations

from collections.abc import Mapping

from ..errors import CheckFailedError, InvalidInputError
from ..settings import format_settings, merge_settings, parse_settings


def verify_checkpoint(tensors: Mapping, source, *, origin: str, metadata: Mapping[str, str] | None = None,
                      arch: str | None = None, method: str | None = None, settings: Mapping | None = None,
                      size: int = 32, trust_pickle: bool = False):
    """A ``Verification`` of ``tensors`` against the 2D ``source`` (a path, spec, state dict or
    module). ``metadata`` is the file's record (arch, arch_settings, method, source_sha256): a
    recorded sha256 that differs from the source's is a ``CheckFailedError``."""
    from ..inflate.convert import match_arch, scheme, to_native
    from ..inflate.detect import detect_scheme, infer_arch
    from ..inflate.resnet2d import describe_2d
    from ..inflate.sources import resolve_source
    from ..slowfast.archs import get_arch, normalize_settings
    from . import verify_inflated

    meta = dict(metadata or {})
    name, two = detect_scheme(tensors, origin)
    if name == "torchvision3d" and (two_d := describe_2d(tensors)):
        raise InvalidInputError(f"{origin}: is a 2D {two_d}, not an inflated 3D checkpoint; inflate it "
                                "first, then verify the output against it")
    notes = []
    if name != "mmaction2":
        tensors, _, notes = to_native(tensors, scheme(name), two, origin)
    elif not any(k.startswith("backbone.") for k in tensors):  # a backbone-only mmaction2 file
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
    recorded = parse_settings(meta["arch_settings"].split(", ")) if meta.get("arch_settings") else {}
    arch_name = arch or meta.get("arch")
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
    sha = meta.get("source_sha256")
    if sha and sha != src.sha256:
        raise CheckFailedError(f"{src.label}: sha256 {src.sha256[:12]}... differs from the "
                               f"{sha[:12]}... recorded in {origin}; this is not its source")
    ver = verify_inflated(tensors, arch_obj, src.tensors, depth=src.depth,
                          method=method or meta.get("method"), origin=origin, size=size, settings=chosen)
    ver.settings = chosen
    ver.scheme = name
    if sha:
        ver.notes.insert(0, f"source sha256 matches the metadata ({sha[:12]}...)")
    ver.notes[:0] = notes
    return ver
