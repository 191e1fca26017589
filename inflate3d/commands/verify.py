"""``inflate3d verify``: strict load + boring-video equivalence of an inflated checkpoint."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..console import Console
from ..errors import CHECK_FAILED, Inflate3dError


def render_verification(console: Console, ver) -> None:
    for note in ver.notes:
        console.info(f"[green]✓[/] {escape(note)}")
    for warning in ver.warnings:
        console.warn(warning)
    for caveat in ver.caveats:
        console.info(f"[yellow]![/] {escape(caveat)}")
    rows = []
    for c in ver.checks:
        frames = "all (pooled)" if c.frames is None else f"{c.frames.lo}..{c.frames.hi} of {c.frames.length}"
        rows.append([c.name, frames, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}", f"{c.tol:.0e}",
                     "[green]pass[/]" if c.passed else "[bold red]FAIL[/]"])
    what = "temporal shift" if ver.method == "shift" else ver.method
    console.table(f"Boring-video equivalence with the 2D net ({what}; frames that must match)",
                  ["check", "frames", "max abs err", "max rel err", "tol", "result"], rows,
                  justify=["left", "right", "right", "right", "right", "left"], markup=True)


def verification_json(ver) -> dict:
    return {"passed": ver.passed, "method": ver.method, "notes": ver.notes, "warnings": ver.warnings,
            "caveats": ver.caveats, "checks": [
        {"name": c.name, "frames": None if c.frames is None else
         {"length": c.frames.length, "first": c.frames.lo, "last": c.frames.hi},
         "max_abs": c.max_abs, "max_rel": c.max_rel, "tol": c.tol, "passed": c.passed}
        for c in ver.checks]}


def run(console: Console, checkpoint: str, source: str, arch: str | None, method: str | None,
        verify_size: int, trust_pickle: bool, frames: int | None = None) -> int:
    from .. import families
    from ..inflate.sources import resolve_source
    from ..io.load import load_checkpoint
    from ..slowfast.archs import get_arch
    from ..verify import verify_inflated

    ckpt = load_checkpoint(Path(checkpoint), trust_pickle=trust_pickle)
    meta = ckpt.metadata
    arch_name = arch or meta.get("arch")
    if not arch_name:
        raise Inflate3dError(f"{checkpoint}: no architecture in its metadata; pass --arch")
    try:
        arch_obj = get_arch(arch_name)
    except KeyError as e:
        raise Inflate3dError(f"--arch: {e.args[0]}") from None
    family = families.for_arch(arch_obj)
    if family is not None:
        with console.status("verifying"):
            ver = families.hook(family, "verify", "verification")(
                ckpt.tensors, arch_obj, source, method=method or meta.get("method"), origin=checkpoint,
                size=verify_size, metadata=meta, trust_pickle=trust_pickle,
                **({"frames": frames} if frames else {}))
        return _report(console, checkpoint, arch_obj, ver)
    if frames:
        raise Inflate3dError("--frames applies to Video Swin checkpoints; ResNet clips are chosen from the architecture")
    tensors = native_tensors(ckpt.tensors, checkpoint)
    src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle)
    identity = source_identity(meta, src, source, checkpoint)
    head = meta.get("head")
    with console.status("verifying"):
        ver = verify_inflated(tensors, arch_obj, src.tensors, depth=src.depth,
                              method=method or meta.get("method"), origin=checkpoint, size=verify_size,
                              head_from_2d=None if head is None else head == "imagenet")
    if identity:
        ver.notes.insert(0, identity)
    return _report(console, checkpoint, arch_obj, ver)


def _report(console: Console, checkpoint: str, arch_obj, ver) -> int:
    render_verification(console, ver)
    console.emit_json({"ok": ver.passed, "checkpoint": checkpoint, "arch": arch_obj.name,
                       "verification": verification_json(ver)})
    console.info("[green]verified[/]" if ver.passed else "[bold red]verification failed[/]")
    return 0 if ver.passed else CHECK_FAILED


def native_tensors(tensors: dict, origin: str) -> dict:
    """The checkpoint in native (mmaction2 recognizer) names, whatever scheme it was converted to."""
    from ..inflate.convert import convert
    from ..inflate.detect import detect_scheme

    if not any(k.startswith(("backbone.", "cls_head.")) for k in tensors):
        scheme, _ = detect_scheme(tensors.keys(), origin)
        if scheme == "mmaction2":  # a backbone-only mmaction2 file
            return {f"backbone.{k}": v for k, v in tensors.items()}
        return convert(tensors, source=None, target="mmaction2", origin=origin).tensors
    return tensors


def source_identity(meta: dict, src, source: str, checkpoint: str) -> str | None:
    """Is ``src`` the recorded 2D source? Its file bytes, or its tensors (the same weights in
    another container) must match the record; None when nothing is recorded."""
    by_file, by_tensors = meta.get("source_sha256"), meta.get("source_tensors_sha256")
    if by_file and by_file == src.sha256:
        return f"source sha256 matches the metadata ({by_file[:12]}...)"
    if by_tensors and by_tensors == src.tensors_sha256:
        return f"source tensors match the metadata (tensors sha256 {by_tensors[:12]}...; another container)"
    if by_file or by_tensors:
        raise Inflate3dError(f"{source}: sha256 {src.sha256[:12]}... (tensors {src.tensors_sha256[:12]}...) "
                             f"differs from the {(by_file or by_tensors)[:12]}... recorded in {checkpoint}; "
                             "this is not its source", exit_code=CHECK_FAILED)
    return None
