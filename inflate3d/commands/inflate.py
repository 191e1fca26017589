"""``inflate3d inflate``: resolve the 2D source -> plan -> stream the 3D checkpoint -> verify -> commit.

The output is written to a temporary file, verified from that file, and only then renamed into
place: a checkpoint that fails its checks is never left behind.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..markup import escape

from ..console import Console, human_bytes
from ..errors import CheckFailedError, Inflate3dError
from .verify import render_verification, verification_json

DEFAULT_DIR = Path("checkpoints")


def default_output(arch: str, method: str, label: str, fmt: str, target: str = "mmaction2") -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", label.rsplit(".", 1)[0] if label.endswith((".pth", ".pt", ".safetensors")) else label)
    codebase = "" if target == "mmaction2" else f"_{target}"
    return DEFAULT_DIR / f"{arch}_{method}_{stem.strip('-').lower()}{codebase}.{fmt}"


def check_format(target: str, fmt: str, output: str | None = None) -> None:
    if fmt == "pkl" and target != "caffe2":
        raise Inflate3dError(f"{output + ': ' if output else ''}.pkl is PySlowFast's Caffe2 blob format and this "
                             f"writes {target} names; write .safetensors or .pth, or use --to caffe2")
    if target == "caffe2" and fmt == "pth":
        raise Inflate3dError("Caffe2 checkpoints are .pkl: use --format pkl or safetensors")


def run(console: Console, source: str | None, arch: str, target: str, settings: tuple, method: str,
        head: str, output: str | None, fmt: str | None, force: bool, no_verify: bool, verify_size: int,
        seed: int, dry_run: bool, trust_pickle: bool) -> int:
    """The work on weights runs on one torch thread (``inflate3d.threads``); verification's
    forward passes on all of them (``_verifying``)."""
    from ..threads import OneThread

    global _ONE
    with OneThread() as _ONE:
        return _run(console, source, arch, target, settings, method, head, output, fmt, force, no_verify,
                    verify_size, seed, dry_run, trust_pickle)


_ONE = None  # run()'s OneThread: the work on weights on one thread


def _verifying():
    """Verification's forward passes: with the threads the process had before ``run``."""
    import contextlib

    return _ONE.every() if _ONE is not None else contextlib.nullcontext()


def _run(console: Console, source: str | None, arch: str, target: str, settings: tuple, method: str,
         head: str, output: str | None, fmt: str | None, force: bool, no_verify: bool, verify_size: int,
         seed: int, dry_run: bool, trust_pickle: bool) -> int:
    from . import early
    from ..paths import output_format

    # torch-free checks first: a typo or an existing output costs milliseconds
    arch, method, user_settings = early.arch_name(arch), early.method_name(method), early.settings(settings)
    src_path = early.input_file(source)
    if target != "huggingface":
        fmt = output_format(Path(output), fmt) if output else fmt or "safetensors"
        check_format(target, fmt, output)
        if not dry_run:  # refuse before any work; the commit checks again
            early.output_file(output, force=force, inputs=[src_path])

    from ..slowfast.archs import get_arch  # torch-free: the registry of named archs

    arch_obj = get_arch(arch)
    prefetch = _prefetch(src_path, arch_obj, target)
    _ONE.begin()  # torch from here on
    from .. import families
    from ..inflate import prepare, resolve_source
    from ..inflate.sources import SEEDED
    from ..io.save import check_output
    from ..paths import make_parent, remove_made

    family = families.for_arch(arch_obj)
    inputs = [src_path] if src_path else []
    if target == "huggingface":
        if family is None or not hasattr(family, "write_folder"):
            raise Inflate3dError(f"--to huggingface: {arch_obj.name} has no Hugging Face counterpart; "
                                 "choose a timesformer_* or vivit_* arch")
        check_output = _check_folder(family)
        if output and not dry_run:
            check_output(Path(output), force=force, inputs=inputs)
    elif family is not None and target != "mmaction2":
        raise Inflate3dError(f"--to {target}: {arch_obj.name} is written in mmaction2 names (or --to huggingface "
                             "where it has a counterpart); convert it afterwards with `inflate3d convert`")
    if family is not None and user_settings:
        raise Inflate3dError(f"--set: {arch_obj.name} takes no settings on inflation; its named settings are used")
    with console.status("loading the 2D source"):
        if family is not None:
            inflation = families.hook(family, "prepare", "inflation")(
                source, arch_obj, method=method, head=head, seed=seed, trust_pickle=trust_pickle)
            src = inflation.source
        else:
            chosen, why = codebase_settings(arch_obj, target, user_settings)
            src = resolve_source(source, depth=arch_obj.depth, trust_pickle=trust_pickle, seed=seed,
                                 prefetched=prefetch)
    if src.kind == SEEDED and source is None:
        console.warn(f"no ImageNet weights in the torch hub cache: using a {src.description}")
    out = Path(output) if output else default_output(arch_obj.name, method, src.label, fmt, target)
    if target == "huggingface":
        out, fmt = (out if output else out.with_suffix("")), "huggingface folder"
    if not output and not dry_run:
        check_output(out, force=force, inputs=inputs)
    if family is None:
        inflation = prepare(src, arch_obj, method=method, head=head, seed=seed, settings=chosen)
        if why:
            console.note(why)
    if dry_run:
        return _render_plan(console, inflation, target)
    made = make_parent(out)
    try:
        if target == "huggingface":
            ver = _write_folder(console, family, inflation, out, force=force, verify=not no_verify)
        elif target == "mmaction2":
            ver = _write(console, inflation, out, fmt=fmt, force=force, verify=not no_verify,
                         verify_size=verify_size)
        else:
            ver = _write_codebase(console, inflation, out, target=target, fmt=fmt, force=force,
                                  verify=not no_verify, verify_size=verify_size, trust_pickle=trust_pickle)
    except BaseException:
        remove_made(made)
        raise
    size = sum(f.stat().st_size for f in out.iterdir()) if out.is_dir() else out.stat().st_size
    _render_report(console, inflation)
    if ver is not None:
        render_verification(console, ver)
    console.info(f"[bold green]wrote[/] {escape(str(out))} ({human_bytes(size)}, {fmt}, "
                 + (f"{target} names, " if target != "mmaction2" else "")
                 + f"{'verified' if ver else 'not verified: --no-verify'})")
    console.emit_json({"ok": True, "output": str(out), "format": fmt, "scheme": target, "bytes": size,
                       **_report_json(inflation),
                       "verification": verification_json(ver) if ver else None})
    return 0


def _prefetch(path: Path | None, arch, target: str):
    """Start reading a ResNet-family source on a thread while torch imports (``io.prefetch``);
    the other families read their sources themselves."""
    from .. import families

    if path is None or target == "huggingface" or arch.family not in families.BUILTIN_ARCH_FAMILIES:
        return None
    from ..io.prefetch import Prefetch

    return Prefetch(path)


def codebase_settings(arch, target: str, user: dict) -> tuple[dict, str | None]:
    """The arch settings for writing into ``target``: that codebase's variant of the arch (for
    SlowFast in PySlowFast, Caffe2 and pytorchvideo: fusion with conv+BN+ReLU, native
    ``slow_pathway.lateral_norm=True``), under the user's own settings. Returns (settings, the
    line that says what was chosen and why, or None)."""
    from ..settings import format_settings, merge_settings

    variant: dict = {}
    if arch.family == "slowfast" and target != "mmaction2" and _fuse_has_bn(target):
        variant = {"slow_pathway": {"lateral_norm": True}}
    chosen = merge_settings(variant, user)
    if not variant:
        return chosen, None
    return chosen, (f"{target}'s variant of {arch.name}: {format_settings(variant)} (its fast->slow fusion "
                    "is conv+BN+ReLU)")


def _fuse_has_bn(target: str) -> bool:
    from ..inflate.convert import scheme  # the scheme tables: only for a target other than the native one

    return scheme(target).fuse_has_bn


def _write(console: Console, inflation, out: Path, *, fmt: str, force: bool, verify: bool,
           verify_size: int):
    """Stream the checkpoint into a temporary file, read every tensor back from disk and compare it
    bit for bit with the inflation (as it is written: ``io.proof.write_proven``; a .pth once
    written, against the inflation computed again), verify what was read, then commit."""
    from .. import families
    from ..io.proof import prove_file, write_proven
    from ..io.save import atomic_output, write_pth

    src = inflation.source
    ver = None
    meta = inflation.metadata()
    with atomic_output(out, force=force, inputs=[src.path] if src.path else []) as f:
        if fmt == "safetensors":
            with console.status(f"writing {out} and reading it back"):
                written = write_proven(f, inflation.specs(), inflation.tensors(), meta, origin=str(out))
        else:
            with console.status(f"writing {out}"):
                write_pth(f, {"state_dict": inflation.state_dict(), "meta": meta})
                f.flush()
            with console.status("reading it back"):
                written = prove_file(Path(f.name), inflation.tensors(), origin=str(out), metadata=meta)
        if verify:
            with console.status("verifying"), _verifying():
                tensors = {k: written.get(k) for k in written.keys()}
                family = families.for_arch(inflation.arch)
                if family is not None:
                    ver = families.hook(family, "verify", "verification")(
                        tensors, inflation.arch, src, method=inflation.method, origin=str(out),
                        size=verify_size, metadata=meta)
                else:
                    from ..verify import verify_inflated

                    ver = verify_inflated(tensors, inflation.arch, src.tensors, depth=src.depth,
                                          method=inflation.method, origin=str(out), size=verify_size,
                                          settings=inflation.settings, head_from_2d=inflation.head == "imagenet")
            if not ver.passed:
                render_verification(console, ver)
                raise CheckFailedError(f"{out}: verification failed; nothing was written",
                                       details={"output": None, "verification": verification_json(ver)})
    return ver


def _write_codebase(console: Console, inflation, out: Path, *, target: str, fmt: str, force: bool,
                    verify: bool, verify_size: int, trust_pickle: bool):
    """Write the inflation in ``target``'s names and container, then verify what the file holds,
    read back through the native names: strict load and the boring-video check."""
    from ..inflate.convert import from_native, scheme, to_native
    from ..io.caffe2 import write_blobs
    from ..io.load import load_checkpoint
    from ..io.save import atomic_output, write_pth, write_safetensors
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
                write_pth(f, container(target, tensors, meta, {"epoch": 0}))  # a fresh net: epoch 0
            f.flush()
        if verify:
            with console.status("verifying"), _verifying():
                written = load_checkpoint(Path(f.name), trust_pickle=trust_pickle).tensors
                native, _, _ = to_native(written, scheme(target), two, origin)
                ver = verify_inflated(native, inflation.arch, src.tensors, depth=src.depth,
                                      method=inflation.method, origin=origin, size=verify_size,
                                      settings=inflation.settings, head_from_2d=inflation.head == "imagenet")
            ver.notes[0] = ver.notes[0].replace("strict load into", f"read back from {target} names; strict load into")
            if not ver.passed:
                render_verification(console, ver)
                raise CheckFailedError(f"{out}: verification failed; nothing was written",
                                       details={"output": None, "verification": verification_json(ver)})
    return ver


def _check_folder(family):
    """check_output for a folder (``--to huggingface``), by the family's own rule."""
    return lambda path, *, force, inputs=(): family.check_folder(path, force=force)


def _write_folder(console: Console, family, inflation, out: Path, *, force: bool, verify: bool):
    """Verify the tensors, then write the folder, which is proven to hold them bit for bit."""
    from .. import families

    ver = None
    if verify:
        with console.status("verifying"), _verifying():
            ver = families.hook(family, "verify", "verification")(
                inflation.state_dict(), inflation.arch, inflation.source, method=inflation.method,
                origin=str(out), metadata=inflation.metadata())
        if not ver.passed:
            render_verification(console, ver)
            raise CheckFailedError(f"{out}: verification failed; nothing was written",
                                   details={"output": None, "verification": verification_json(ver)})
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
    """The inflation as --json reports it: the ResNet engine's own report, or the same fields
    from a family's inflation."""
    if hasattr(inflation, "report"):
        return inflation.report()
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
    from ..settings import format_settings

    chosen = getattr(inflation, "settings", None)
    settings = f" with {format_settings(chosen)}" if chosen else ""
    console.note(f"{inflation.arch.name}{settings} from {src.description}, {how}")
    padded = [e for e in inflation.plan.entries if e.padded]
    rows = [[action.replace("_", " ").replace(" 2d ", " 2D "), f"{n['tensors']:,}", f"{n['values']:,}"]
            for action, n in _report_json(inflation)["tensors"].items()
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


def _render_plan(console: Console, inflation, target: str = "mmaction2") -> int:
    rows = [[e.key, e.action, e.source or "-", "x".join(map(str, e.shape)), f"+{e.pad}" if e.pad else ""]
            for e in inflation.plan.entries]
    console.table(f"Key map: {inflation.source.label} -> {inflation.arch.name} (dry run, nothing written)",
                  ["target", "action", "2D source", "shape", "pad"], rows)
    _render_report(console, inflation)
    console.emit_json({"ok": True, "dry_run": True, **_report_json(inflation),
                       "map": [{"target": e.key, "action": e.action, "source": e.source,
                                "shape": list(e.shape), "pad": e.pad} for e in inflation.plan.entries]})
    return 0
