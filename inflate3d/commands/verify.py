"""``inflate3d verify``: strict load + boring-video equivalence of an inflated checkpoint."""
from __future__ import annotations

from pathlib import Path

from ..markup import escape

from ..console import Console
from ..errors import CHECK_FAILED


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
        {"name": c.name, "passed": c.passed,
         "detail": f"max rel err {c.max_rel:.2e} (tol {c.tol:.0e})" + (
             " over all frames (pooled)" if c.frames is None else
             f" over frames {c.frames.lo}..{c.frames.hi} of {c.frames.length}"),
         "frames": None if c.frames is None else
         {"length": c.frames.length, "first": c.frames.lo, "last": c.frames.hi},
         "max_abs": c.max_abs, "max_rel": c.max_rel, "tol": c.tol}
        for c in ver.checks]}


def run(console: Console, checkpoint: str, source: str, arch: str | None, settings: tuple,
        method: str | None, verify_size: int, trust_pickle: bool, frames: int | None = None) -> int:
    from . import early

    arch, method, user_settings = early.arch_name(arch), early.method_name(method), early.settings(settings)
    early.checkpoint_file(checkpoint)
    early.input_file(source)

    from ..torch_import import import_torch

    import_torch()  # after the torch-free checks
    from ..io.load import load_checkpoint
    from ..settings import format_settings
    from ..verify.api import verify_checkpoint

    ckpt = load_checkpoint(Path(checkpoint), trust_pickle=trust_pickle)
    with console.status("verifying"):
        ver = verify_checkpoint(ckpt.tensors, source, origin=checkpoint, metadata=ckpt.metadata, arch=arch,
                                method=method, settings=user_settings, size=verify_size,
                                trust_pickle=trust_pickle, frames=frames)
    render_verification(console, ver)
    console.emit_json({"ok": ver.passed, "input": checkpoint, "source": source, "arch": ver.arch,
                       "arch_settings": format_settings(getattr(ver, "settings", {}) or {}),
                       "scheme": getattr(ver, "scheme", None),
                       "verification": verification_json(ver)})
    console.info("[green]verified[/]" if ver.passed else "[bold red]verification failed[/]")
    return 0 if ver.passed else CHECK_FAILED
