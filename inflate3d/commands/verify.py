"""``inflate3d verify``: strict load + boring-video equivalence of an inflated checkpoint."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..console import Console
from ..errors import CHECK_FAILED, CheckFailedError, Inflate3dError


def render_verification(console: Console, ver) -> None:
    for note in ver.notes:
        console.info(f"[green]✓[/] {escape(note)}")
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
    return {"passed": ver.passed, "method": ver.method, "notes": ver.notes, "checks": [
        {"name": c.name, "passed": c.passed,
         "detail": f"max rel err {c.max_rel:.2e} (tol {c.tol:.0e})" + (
             " over all frames (pooled)" if c.frames is None else
             f" over frames {c.frames.lo}..{c.frames.hi} of {c.frames.length}"),
         "frames": None if c.frames is None else
         {"length": c.frames.length, "first": c.frames.lo, "last": c.frames.hi},
         "max_abs": c.max_abs, "max_rel": c.max_rel, "tol": c.tol}
        for c in ver.checks]}


def run(console: Console, checkpoint: str, source: str, arch: str | None, settings: tuple,
        method: str | None, verify_size: int, trust_pickle: bool) -> int:
    from . import early

    arch, method, user_settings = early.arch_name(arch), early.method_name(method), early.settings(settings)
    early.checkpoint_file(checkpoint)
    early.input_file(source)

    from ..inflate.convert import match_arch, scheme, to_native
    from ..inflate.detect import detect_scheme, infer_arch
    from ..inflate.resnet2d import describe_2d
    from ..inflate.sources import resolve_source
    from ..io.load import load_checkpoint
    from ..settings import format_settings, merge_settings, parse_settings
    from ..slowfast.archs import get_arch
    from ..verify import verify_inflated

    ckpt = load_checkpoint(Path(checkpoint), trust_pickle=trust_pickle)
    meta = ckpt.metadata
    tensors = ckpt.tensors
    name, two = detect_scheme(tensors, checkpoint)
    if name == "torchvision3d" and (two_d := describe_2d(tensors)):
        raise Inflate3dError(f"{checkpoint}: is a 2D {two_d}, not an inflated 3D checkpoint; inflate it "
                             f"first (inflate3d inflate {checkpoint} --arch ...), then verify the output")
    notes = []
    if name != "mmaction2":
        tensors, _, notes = to_native(tensors, scheme(name), two, checkpoint)
    elif not any(k.startswith("backbone.") for k in tensors):  # a backbone-only mmaction2 file
        tensors = {f"backbone.{k}": v for k, v in tensors.items()}
    recorded_settings = parse_settings(meta["arch_settings"].split(", ")) if meta.get("arch_settings") else {}
    arch_name = arch or meta.get("arch")
    if arch_name:
        arch_obj = get_arch(arch_name)
        chosen = merge_settings(recorded_settings if arch_name == meta.get("arch") else {}, user_settings)
    else:  # no record: the architecture the keys and shapes imply
        arch_obj, chosen = match_arch(tensors, infer_arch(tensors, checkpoint), checkpoint)
        chosen = merge_settings(chosen, user_settings)
        notes.append(f"architecture {arch_obj.name}{' with ' + format_settings(chosen) if chosen else ''} "
                     "inferred from the keys and shapes (no record in the file)")
    src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle)
    recorded = meta.get("source_sha256")
    if recorded and recorded != src.sha256:
        raise CheckFailedError(f"{source}: sha256 {src.sha256[:12]}... differs from the "
                               f"{recorded[:12]}... recorded in {checkpoint}; this is not its source")
    with console.status("verifying"):
        ver = verify_inflated(tensors, arch_obj, src.tensors, depth=src.depth,
                              method=method or meta.get("method"), origin=checkpoint, size=verify_size,
                              settings=chosen)
    if recorded:
        ver.notes.insert(0, f"source sha256 matches the metadata ({recorded[:12]}...)")
    for note in notes:
        console.note(f"note: {note}")
    render_verification(console, ver)
    console.emit_json({"ok": ver.passed, "input": checkpoint, "source": source, "arch": arch_obj.name,
                       "arch_settings": format_settings(chosen), "scheme": name,
                       "verification": verification_json(ver)})
    console.info("[green]verified[/]" if ver.passed else "[bold red]verification failed[/]")
    return 0 if ver.passed else CHECK_FAILED
