"""``inflate3d inflate``: resolve the 2D source -> plan -> stream the 3D checkpoint -> verify -> commit.

The output is written to a temporary file, verified from that file, and only then renamed into
place: a checkpoint that fails its checks is never left behind.
"""
from __future__ import annotations

import re
from pathlib import Path

from rich.markup import escape

from ..console import Console, human_bytes
from ..errors import CheckFailedError, Inflate3dError
from .verify import render_verification, verification_json

DEFAULT_DIR = Path("checkpoints")


def default_output(arch: str, method: str, label: str, fmt: str, target: str = "mmaction2") -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", label.rsplit(".", 1)[0] if label.endswith((".pth", ".pt", ".safetensors")) else label)
    codebase = "" if target == "mmaction2" else f"_{target}"
    return DEFAULT_DIR / f"{arch}_{method}_{stem.strip('-').lower()}{codebase}.{fmt}"


def check_format(target: str, fmt: str) -> None:
    if fmt == "pkl" and target != "caffe2":
        raise Inflate3dError("--format pkl writes Caffe2 blobs; use it with --to caffe2")
    if target == "caffe2" and fmt == "pth":
        raise Inflate3dError("Caffe2 checkpoints are .pkl: use --format pkl or safetensors")


def run(console: Console, source: str | None, arch: str, target: str, settings: tuple, method: str,
        head: str, output: str | None, fmt: str | None, force: bool, no_verify: bool, verify_size: int,
        seed: int, dry_run: bool, trust_pickle: bool) -> int:
    from . import early

    # torch-free checks first: a typo or an existing output costs milliseconds
    arch, method, user_settings = early.arch_name(arch), early.method_name(method), early.settings(settings)
    fmt = fmt or "safetensors"
    check_format(target, fmt)
    src_path = early.input_file(source)
    if not dry_run:  # refuse before any work; the commit checks again
        early.output_file(output, force=force, inputs=[src_path])

    from ..inflate import prepare, resolve_source
    from ..inflate.sources import SEEDED
    from ..io.save import check_output
    from ..paths import make_parent, remove_made
    from ..slowfast.archs import get_arch

    arch_obj = get_arch(arch)
    chosen, why = codebase_settings(arch_obj, target, user_settings)
    with console.status("loading the 2D source"):
        src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle, seed=seed)
    if src.kind == SEEDED and source is None:
        console.warn(f"no ImageNet weights in the torch hub cache: using a {src.description}")
    out = Path(output) if output else default_output(arch_obj.name, method, src.label, fmt, target)
    if not output and not dry_run:
        check_output(out, force=force, inputs=[src_path] if src_path else [])
    inflation = prepare(src, arch_obj, method=method, head=head, seed=seed, settings=chosen)
    if why:
        console.note(why)
    if dry_run:
        return _render_plan(console, inflation, target)
    made = make_parent(out)
    try:
        if target == "mmaction2":
            ver = _write(console, inflation, out, fmt=fmt, force=force, verify=not no_verify,
                         verify_size=verify_size)
        else:
            ver = _write_codebase(console, inflation, out, target=target, fmt=fmt, force=force,
                                  verify=not no_verify, verify_size=verify_size, trust_pickle=trust_pickle)
    except BaseException:
        remove_made(made)
        raise
    size = out.stat().st_size
    _render_report(console, inflation)
    if ver is not None:
        render_verification(console, ver)
    console.info(f"[bold green]wrote[/] {escape(str(out))} ({human_bytes(size)}, {fmt}, "
                 + (f"{target} names, " if target != "mmaction2" else "")
                 + f"{'verified' if ver else 'not verified: --no-verify'})")
    console.emit_json({"ok": True, "output": str(out), "format": fmt, "scheme": target, "bytes": size,
                       **inflation.report(),
                       "verification": verification_json(ver) if ver else None})
    return 0


def codebase_settings(arch, target: str, user: dict) -> tuple[dict, str | None]:
    """The arch settings for writing into ``target``: that codebase's variant of the arch (for
    SlowFast in PySlowFast, Caffe2 and pytorchvideo: fusion with conv+BN+ReLU, native
    ``slow_pathway.lateral_norm=True``), under the user's own settings. Returns (settings, the
    line that says what was chosen and why, or None)."""
    from ..inflate.convert import scheme
    from ..settings import format_settings, merge_settings

    variant: dict = {}
    if arch.family == "slowfast" and scheme(target).fuse_has_bn:
        variant = {"slow_pathway": {"lateral_norm": True}}
    chosen = merge_settings(variant, user)
    if not variant:
        return chosen, None
    return chosen, (f"{target}'s variant of {arch.name}: {format_settings(variant)} (its fast->slow fusion "
                    "is conv+BN+ReLU)")


def _write(console: Console, inflation, out: Path, *, fmt: str, force: bool, verify: bool,
           verify_size: int):
    import torch

    from ..io.load import load_checkpoint
    from ..io.save import atomic_output, write_safetensors
    from ..verify import verify_inflated

    src = inflation.source
    ver = None
    with atomic_output(out, force=force, inputs=[src.path] if src.path else []) as f:
        with console.status(f"writing {out}"):
            if fmt == "safetensors":
                write_safetensors(f, inflation.specs(), inflation.tensors(), inflation.metadata())
            else:
                torch.save({"state_dict": inflation.state_dict(), "meta": inflation.metadata()}, f)
            f.flush()
        if verify:
            with console.status("verifying"):
                written = load_checkpoint(Path(f.name)).tensors
                ver = verify_inflated(written, inflation.arch, src.tensors, depth=src.depth,
                                      method=inflation.method, origin=str(out), size=verify_size,
                                      settings=inflation.settings)
            if not ver.passed:
                render_verification(console, ver)
                raise CheckFailedError(f"{out}: verification failed; nothing was written",
                                       details={"output": None, "verification": verification_json(ver)})
    return ver


def _write_codebase(console: Console, inflation, out: Path, *, target: str, fmt: str, force: bool,
                    verify: bool, verify_size: int, trust_pickle: bool):
    """Write the inflation in ``target``'s names and container, then verify what the file holds,
    read back through the native names: strict load and the boring-video check."""
    import torch

    from ..inflate.convert import from_native, scheme, to_native
    from ..io.caffe2 import write_blobs
    from ..io.load import load_checkpoint
    from ..io.save import atomic_output, write_safetensors
    from ..verify import verify_inflated
    from .convert import container

    src = inflation.source
    two = inflation.arch.family == "slowfast"
    origin = str(out)
    tensors, _, _ = from_native(inflation.state_dict(), scheme(target), two, origin)
    meta = {**inflation.metadata(), "scheme": target}
    ver = None
    with atomic_output(out, force=force, inputs=[src.path] if src.path else []) as f:
        with console.status(f"writing {out}"):
            if fmt == "safetensors":
                write_safetensors(f, [(k, tuple(v.shape), v.dtype) for k, v in tensors.items()],
                                  tensors.items(), meta)
            elif fmt == "pkl":
                write_blobs(f, tensors, meta)
            else:
                torch.save(container(target, tensors, meta), f)
            f.flush()
        if verify:
            with console.status("verifying"):
                written = load_checkpoint(Path(f.name), trust_pickle=trust_pickle).tensors
                native, _, _ = to_native(written, scheme(target), two, origin)
                ver = verify_inflated(native, inflation.arch, src.tensors, depth=src.depth,
                                      method=inflation.method, origin=origin, size=verify_size,
                                      settings=inflation.settings)
            ver.notes[0] = ver.notes[0].replace("strict load into", f"read back from {target} names; strict load into")
            if not ver.passed:
                render_verification(console, ver)
                raise CheckFailedError(f"{out}: verification failed; nothing was written",
                                       details={"output": None, "verification": verification_json(ver)})
    return ver


def _render_report(console: Console, inflation) -> None:
    src = inflation.source
    how = "2D weights copied (TSM)" if inflation.method == "copy" else f"method {inflation.method}"
    from ..settings import format_settings

    settings = f" with {format_settings(inflation.settings)}" if inflation.settings else ""
    console.note(f"{inflation.arch.name}{settings} from {src.description}, {how}")
    padded = [e for e in inflation.plan.entries if e.padded]
    rows = [[action.replace("_", " ").replace(" 2d ", " 2D "), f"{n['tensors']:,}", f"{n['values']:,}"]
            for action, n in inflation.report()["tensors"].items()
            if n["tensors"]]
    console.table("Where every output tensor comes from", ["action", "tensors", "values"], rows,
                  justify=["left", "right", "right"])
    if padded:
        console.note(f"zero-padded input channels (lateral inputs, appended at the end of dim 1): "
                     f"{len(padded)} tensors, e.g. {padded[0].key} (+{padded[0].pad})")
    if inflation.plan.fresh_units:
        console.note("fresh init (no 2D counterpart; mmaction2's Kaiming / normal init, seed "
                     f"{inflation.seed}): {', '.join(inflation.plan.fresh_units)}")
    if inflation.plan.unused:
        console.note(f"2D tensors not used: {', '.join(inflation.plan.unused)}")


def _render_plan(console: Console, inflation, target: str = "mmaction2") -> int:
    rows = [[e.key, e.action, e.source or "-", "x".join(map(str, e.shape)), f"+{e.pad}" if e.pad else ""]
            for e in inflation.plan.entries]
    console.table(f"Key map: {inflation.source.label} -> {inflation.arch.name} (dry run, nothing written)",
                  ["target", "action", "2D source", "shape", "pad"], rows)
    _render_report(console, inflation)
    console.emit_json({"ok": True, "dry_run": True, **inflation.report(),
                       "map": [{"target": e.key, "action": e.action, "source": e.source,
                                "shape": list(e.shape), "pad": e.pad} for e in inflation.plan.entries]})
    return 0
