"""``inflate3d inflate``: resolve the 2D source -> plan -> stream the 3D checkpoint -> verify -> commit.

The output is written to a temporary file, verified from that file, and only then renamed into
place: a checkpoint that fails its checks is never left behind.
"""
from __future__ import annotations

import re
from pathlib import Path

from rich.markup import escape

from ..console import Console, human_bytes
from ..errors import CHECK_FAILED, Inflate3dError
from .verify import render_verification, verification_json

DEFAULT_DIR = Path("checkpoints")


def default_output(arch: str, method: str, label: str, fmt: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", label.rsplit(".", 1)[0] if label.endswith((".pth", ".pt", ".safetensors")) else label)
    return DEFAULT_DIR / f"{arch}_{method}_{stem.strip('-').lower()}.{fmt}"


def run(console: Console, source: str | None, arch: str, method: str, head: str, output: str | None,
        fmt: str, force: bool, no_verify: bool, verify_size: int, seed: int, dry_run: bool,
        trust_pickle: bool, to: str = "mmaction2") -> int:
    from .. import families
    from ..inflate import prepare, resolve_source
    from ..inflate.sources import SEEDED
    from ..slowfast.archs import get_arch

    from ..io.save import check_output, output_format

    try:
        arch_obj = get_arch(arch)
    except KeyError as e:
        raise Inflate3dError(f"--arch: {e.args[0]}") from None
    inputs = [Path(source)] if source and Path(source).exists() else []
    family = families.for_arch(arch_obj)
    if to == "huggingface":
        if family is None or not hasattr(family, "write_folder"):
            raise Inflate3dError(f"--to huggingface: {arch_obj.name} has no Hugging Face counterpart; "
                                 "choose a timesformer_* or vivit_* arch")
        check_output = _check_folder(family)
    else:
        fmt = output_format(Path(output), fmt) if output else fmt or "safetensors"
        if fmt == "pkl":
            raise Inflate3dError(f"{output}: .pkl is PySlowFast's Caffe2 blob format and inflate writes mmaction2 "
                                 "names; write .safetensors or .pth, then `inflate3d convert --to caffe2 -o x.pkl`")
    if output and not dry_run:  # refuse before any work; the commit checks again
        check_output(Path(output), force=force, inputs=inputs)
    with console.status("loading the 2D source"):
        if family is not None:
            inflation = families.hook(family, "prepare", "inflation")(
                source, arch_obj, method=method, head=head, seed=seed, trust_pickle=trust_pickle)
            src = inflation.source
        else:
            src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle, seed=seed)
    if src.kind == SEEDED:
        console.warn(f"no ImageNet weights in the torch hub cache: using a {src.description}")
    out = Path(output) if output else default_output(arch_obj.name, method, src.label, fmt)
    if to == "huggingface":
        out, fmt = (out if output else out.with_suffix("")), "huggingface folder"
    if not output and not dry_run:
        out.parent.mkdir(parents=True, exist_ok=True)
        check_output(out, force=force, inputs=inputs)
    if family is None:
        inflation = prepare(src, arch_obj, method=method, head=head, seed=seed)
    if dry_run:
        return _render_plan(console, inflation)
    if to == "huggingface":
        ver = _write_folder(console, family, inflation, out, force=force, verify=not no_verify)
    else:
        ver = _write(console, inflation, out, fmt=fmt, force=force, verify=not no_verify, verify_size=verify_size)
    size = sum(f.stat().st_size for f in out.iterdir()) if out.is_dir() else out.stat().st_size
    _render_report(console, inflation)
    if ver is not None:
        render_verification(console, ver)
    console.info(f"[bold green]wrote[/] {escape(str(out))} ({human_bytes(size)}, {fmt}, "
                 f"{'verified' if ver else 'not verified: --no-verify'})")
    console.emit_json({"ok": True, "output": str(out), "format": fmt, "bytes": size,
                       **_report_json(inflation),
                       "verification": verification_json(ver) if ver else None})
    return 0


def _write(console: Console, inflation, out: Path, *, fmt: str, force: bool, verify: bool,
           verify_size: int):
    """Stream the checkpoint into a temporary file, read every tensor back from disk and compare it
    bit for bit with the inflation (computed again), verify what was read, then commit."""
    from .. import families
    from ..io.proof import prove_file
    from ..io.save import atomic_output, write_pth, write_safetensors
    from ..verify import verify_inflated

    src = inflation.source
    ver = None
    meta = inflation.metadata()
    with atomic_output(out, force=force, inputs=[src.path] if src.path else []) as f:
        with console.status(f"writing {out}"):
            if fmt == "safetensors":
                write_safetensors(f, inflation.specs(), inflation.tensors(), meta)
            else:
                write_pth(f, {"state_dict": inflation.state_dict(), "meta": meta})
            f.flush()
        with console.status("reading it back"):
            written = prove_file(Path(f.name), inflation.tensors(), origin=str(out), metadata=meta)
        if verify:
            with console.status("verifying"):
                tensors = {k: written.get(k) for k in written.keys()}
                family = families.for_arch(inflation.arch)
                if family is not None:
                    ver = families.hook(family, "verify", "verification")(
                        tensors, inflation.arch, src, method=inflation.method, origin=str(out),
                        size=verify_size, metadata=meta)
                else:
                    ver = verify_inflated(tensors, inflation.arch, src.tensors, depth=src.depth,
                                          method=inflation.method, origin=str(out), size=verify_size,
                                          head_from_2d=inflation.head == "imagenet")
            if not ver.passed:
                render_verification(console, ver)
                console.emit_json({"ok": False, "output": None, "verification": verification_json(ver)})
                raise Inflate3dError(f"{out}: verification failed; nothing was written",
                                     exit_code=CHECK_FAILED)
    return ver


def _check_folder(family):
    """check_output for a folder (``--to huggingface``), by the family's own rule."""
    return lambda path, *, force, inputs=(): family.check_folder(path, force=force)


def _write_folder(console: Console, family, inflation, out: Path, *, force: bool, verify: bool):
    """Verify the tensors, then write the folder, which is proven to hold them bit for bit."""
    from .. import families

    ver = None
    if verify:
        with console.status("verifying"):
            ver = families.hook(family, "verify", "verification")(
                inflation.state_dict(), inflation.arch, inflation.source, method=inflation.method,
                origin=str(out), metadata=inflation.metadata())
        if not ver.passed:
            render_verification(console, ver)
            raise Inflate3dError(f"{out}: verification failed; nothing was written", exit_code=CHECK_FAILED)
    with console.status(f"writing {out}"):
        for line in family.write_folder(out, inflation, inflation.metadata(), force=force):
            console.info(f"[green]✓[/] {escape(line)}")
    return ver


def _summary(inflation) -> dict[str, dict[str, int]]:
    import math

    out: dict[str, dict[str, int]] = {}
    for action, entries in inflation.plan.by_action().items():
        out[action] = {"tensors": len(entries), "values": sum(math.prod(e.shape) for e in entries)}
    return out


def _report_json(inflation) -> dict:
    src = inflation.source
    return {
        "source": {"label": src.label, "kind": src.kind, "description": src.description,
                   "sha256": src.sha256, "depth": src.depth},
        "arch": inflation.arch.name, "method": inflation.method,
        "head": "none" if inflation.head is None else inflation.head,
        "tensors": _summary(inflation),
        "zero_padded": [e.key for e in inflation.plan.entries if e.padded],
        "fresh_units": inflation.plan.fresh_units,
        "unused_2d": inflation.plan.unused,
        "notes": list(getattr(inflation, "notes", [])),
    }


def _render_report(console: Console, inflation) -> None:
    src = inflation.source
    how = (f"2D weights copied ({'TSM' if inflation.arch.family == 'tsm' else 'no temporal kernel to inflate'})"
           if inflation.method == "copy" else f"method {inflation.method}")
    console.note(f"{inflation.arch.name} from {src.description}, {how}")
    padded = [e for e in inflation.plan.entries if e.padded]
    rows = [[action, f"{n['tensors']:,}", f"{n['values']:,}"] for action, n in _summary(inflation).items()
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
    for note in getattr(inflation, "notes", []):  # assumptions about the source (a family's)
        console.note(f"note: {note}")


def _render_plan(console: Console, inflation) -> int:
    rows = [[e.key, e.action, e.source or "-", "x".join(map(str, e.shape)), f"+{e.pad}" if e.pad else ""]
            for e in inflation.plan.entries]
    console.table(f"Key map: {inflation.source.label} -> {inflation.arch.name} (dry run, nothing written)",
                  ["target", "action", "2D source", "shape", "pad"], rows)
    _render_report(console, inflation)
    console.emit_json({"ok": True, "dry_run": True, **_report_json(inflation),
                       "map": [{"target": e.key, "action": e.action, "source": e.source,
                                "shape": list(e.shape), "pad": e.pad} for e in inflation.plan.entries]})
    return 0
