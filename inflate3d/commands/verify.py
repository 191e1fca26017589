"""``inflate3d verify``: strict load + boring-video equivalence of an inflated checkpoint."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..console import Console
from ..errors import CHECK_FAILED, Inflate3dError


def render_verification(console: Console, ver) -> None:
    for note in ver.notes:
        console.info(f"[green]✓[/] {escape(note)}")
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
    return {"passed": ver.passed, "method": ver.method, "notes": ver.notes, "caveats": ver.caveats, "checks": [
        {"name": c.name, "frames": None if c.frames is None else
         {"length": c.frames.length, "first": c.frames.lo, "last": c.frames.hi},
         "max_abs": c.max_abs, "max_rel": c.max_rel, "tol": c.tol, "passed": c.passed}
        for c in ver.checks]}


def run(console: Console, checkpoint: str, source: str, arch: str | None, method: str | None,
        verify_size: int, trust_pickle: bool) -> int:
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
    tensors = ckpt.tensors
    family = families.for_arch(arch_obj)
    if family is not None:
        with console.status("verifying"):
            ver = families.hook(family, "verify", "verification")(
                tensors, arch_obj, source, method=method or meta.get("method"), origin=checkpoint,
                size=verify_size, metadata=meta, trust_pickle=trust_pickle)
        return _report(console, checkpoint, arch_obj, ver)
    if not any(k.startswith("backbone.") for k in tensors):  # a backbone-only mmaction2 file
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
    src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle)
    recorded = meta.get("source_sha256")
    if recorded and recorded != src.sha256:
        raise Inflate3dError(f"{source}: sha256 {src.sha256[:12]}... differs from the "
                             f"{recorded[:12]}... recorded in {checkpoint}; this is not its source",
                             exit_code=CHECK_FAILED)
    with console.status("verifying"):
        ver = verify_inflated(tensors, arch_obj, src.tensors, depth=src.depth,
                              method=method or meta.get("method"), origin=checkpoint, size=verify_size)
    if recorded:
        ver.notes.insert(0, f"source sha256 matches the metadata ({recorded[:12]}...)")
    return _report(console, checkpoint, arch_obj, ver)


def _report(console: Console, checkpoint: str, arch_obj, ver) -> int:
    render_verification(console, ver)
    console.emit_json({"ok": ver.passed, "checkpoint": checkpoint, "arch": arch_obj.name,
                       "verification": verification_json(ver)})
    console.info("[green]verified[/]" if ver.passed else "[bold red]verification failed[/]")
    return 0 if ver.passed else CHECK_FAILED
