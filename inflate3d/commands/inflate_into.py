"""``inflate3d inflate SRC --into MODULE:FACTORY``: build the user's model -> inflate the 2D weights
into it by structure -> write its state dict in its own names -> read the file back, prove every
aligned layer (and the whole model where its graph is the 2D net's) -> commit.

``--into`` imports the named module and calls the factory: that runs the user's own code, which
is the point (it is their model); nothing else is imported from user input.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..markup import escape

from .. import __version__
from ..console import Console, human_bytes
from ..errors import CHECK_FAILED, CheckFailedError, Inflate3dError


def build_user_model(into: str, kwargs: str | None):
    """Import MODULE, call FACTORY(**kwargs); the result must be an ``nn.Module``."""
    import importlib

    from torch import nn

    module_name, _, attr = into.partition(":")
    if not module_name or not attr:
        raise Inflate3dError(f"--into {into}: expected MODULE:FACTORY, e.g. torchvision.models.video:r3d_18")
    try:
        params = json.loads(kwargs) if kwargs else {}
    except json.JSONDecodeError as e:
        raise Inflate3dError(f"--kwargs: not JSON ({e.msg}); e.g. '{{\"num_classes\": 400}}'") from None
    if not isinstance(params, dict):
        raise Inflate3dError("--kwargs: expected a JSON object of keyword arguments")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise Inflate3dError(f"--into {into}: cannot import {module_name} ({e}); is it installed, or "
                             "on PYTHONPATH?") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise Inflate3dError(f"--into {into}: {module_name} has no callable {attr!r}")
    try:
        model = factory(**params)
    except TypeError as e:
        raise Inflate3dError(f"--into {into}: the factory refused --kwargs ({e})") from None
    if not isinstance(model, nn.Module):
        raise Inflate3dError(f"--into {into}: returned a {type(model).__name__}, not an nn.Module")
    return model


def parse_input_shape(text: str | None):
    if not text:
        return None
    try:
        shape = json.loads(text)
    except json.JSONDecodeError:
        shape = None
    ok = isinstance(shape, list) and shape and (all(isinstance(s, int) for s in shape) or all(
        isinstance(p, list) and p and all(isinstance(s, int) for s in p) for p in shape))
    if not ok:
        raise Inflate3dError(f"--input-shape {text}: expected a JSON shape, e.g. [1,3,8,224,224], or a "
                             "list of them for a multi-pathway model")
    return tuple(shape) if isinstance(shape[0], int) else [tuple(s) for s in shape]


def parse_hints(hints) -> dict[str, str]:
    out = {}
    for h in hints or ():
        a, sep, b = h.partition("=")
        if not sep or not a or not b:
            raise Inflate3dError(f"--hint {h}: expected MODEL_LAYER=2D_LAYER, e.g. stem.0=conv1")
        out[a] = b
    return out


def run(console: Console, source: str | None, into: str, kwargs: str | None, method: str,
        output: str | None, fmt: str, force: bool, strict: bool, hints, input_shape: str | None,
        no_verify: bool, dry_run: bool, trust_pickle: bool, verify_size: int = 32) -> int:
    from . import early

    method = early.method_name(method)  # torch-free checks first: centre is center
    if source is not None:
        early.input_file(source)

    from ..torch_import import import_torch

    import_torch()  # after the torch-free checks
    from ..inflate.into import inflate_into
    from ..io.save import check_output, output_format

    if source is None:
        raise Inflate3dError("--into needs a SOURCE: a file, torchvision:resnetNN or seeded:resnetNN:SEED")
    if not output and not dry_run:
        raise Inflate3dError("--into needs -o OUTPUT (or --dry-run)")
    out = Path(output) if output else None
    inputs = [Path(source)] if Path(source).exists() else []
    if out is not None and not dry_run:
        fmt = output_format(out, fmt)
        if fmt == "pkl":
            raise Inflate3dError(f"{out}: --into writes the model's own state dict; use .safetensors or .pth")
        check_output(out, force=force, inputs=inputs)  # refuse before any work
    shape, hint_map = parse_input_shape(input_shape), parse_hints(hints)
    with console.status(f"building {into}"):
        model = build_user_model(into, kwargs)
    with console.status("aligning and inflating"):
        report = inflate_into(model, source, method=method, strict=strict, hints=hint_map,
                              input_shape=shape, trust_pickle=trust_pickle, origin=into)
    if dry_run:
        render_map(console, report)
        render_report(console, report)
        console.emit_json({"ok": True, "dry_run": True, **report.to_json()})
        return 0
    proof = _write(console, model, report, out, fmt=fmt, force=force, kwargs=kwargs, verify=not no_verify,
                   verify_size=verify_size)
    size = out.stat().st_size
    render_report(console, report)
    if proof:
        render_proof(console, *proof)
    console.info(f"[bold green]wrote[/] {escape(str(out))} ({human_bytes(size)}, {fmt}, {into}'s own names, "
                 f"{'verified' if proof else 'not verified: --no-verify'})")
    console.emit_json({"ok": True, "input": source, "output": str(out), "format": fmt, "bytes": size,
                       **report.to_json(), "proof": proof_json(*proof) if proof else None,
                       "checks": checks_json(*proof) if proof else []})
    return 0


def metadata(report, into: str, kwargs: str | None) -> dict[str, str]:
    src = report.source
    return {"format": "inflate3d", "inflate3d_version": __version__, "scheme": "model's own",
            "into": into, "kwargs": kwargs or "{}", "method": report.method, "source": src.label,
            "source_kind": src.kind, "source_sha256": src.sha256,
            "source_depth": "" if src.depth is None else str(src.depth)}


def _write(console: Console, model, report, out: Path, *, fmt: str, force: bool, kwargs: str | None,
           verify: bool, verify_size: int):
    import torch

    from ..io.load import load_checkpoint
    from ..io.save import atomic_output, write_safetensors
    from ..verify.layers import prove_layers
    from ..verify.whole import static_clip_check

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    src = report.source
    proof = None
    with atomic_output(out, force=force, inputs=[src.path] if src.path else []) as f:
        with console.status(f"writing {out}"):
            if fmt == "safetensors":
                write_safetensors(f, [(k, tuple(v.shape), v.dtype) for k, v in state.items()],
                                  state.items(), metadata(report, report.model, kwargs))
            else:
                torch.save(state, f)
            f.flush()
        if verify:
            with console.status("proving"):
                ckpt = load_checkpoint(Path(f.name))
                written = {f"{ckpt.prefix or ''}{k}": v for k, v in ckpt.tensors.items()}
                differ = [k for k in state if k not in written or not torch.equal(written[k], state[k])]
                if differ or len(written) != len(state):
                    raise Inflate3dError(f"{out}: the file read back differs from the model "
                                         f"({', '.join(differ[:3]) or 'extra keys'}); nothing was written",
                                         exit_code=CHECK_FAILED)
                model.load_state_dict(written, strict=True)  # the proof runs on the bytes on disk
                layers = prove_layers(model, report)
                whole = static_clip_check(model, report, size=verify_size)
            if not all(c.passed for c in layers) or (whole.applicable and not whole.passed):
                render_proof(console, layers, whole)
                raise CheckFailedError(f"{out}: the proof failed; nothing was written",
                                       details={"output": None, "proof": proof_json(layers, whole),
                                                "checks": checks_json(layers, whole)})
            proof = (layers, whole)
    return proof


def render_report(console: Console, report) -> None:
    console.note(f"{report.model} from {report.source.description}, method {report.method} "
                 f"(layer order traced on a meta-device input of shape {report.input_shape})")
    rows = [[a, f"{n['tensors']:,}", f"{n['values']:,}"] for a, n in report.summary().items() if n["tensors"]]
    console.table("What happened to every tensor of the model", ["action", "tensors", "values"], rows,
                  justify=["left", "right", "right"])
    if report.padded:
        console.note(f"zero-padded input channels (appended at the end of dim 1): {len(report.padded)} tensors, "
                     f"e.g. {report.padded[0].key} (+{report.padded[0].pad})")
    if report.untouched_layers:
        shown = ", ".join(report.untouched_layers[:4])
        more = f" and {len(report.untouched_layers) - 4} more" if len(report.untouched_layers) > 4 else ""
        console.note(f"conv / norm layers with no 2D counterpart, left as the model had them: {shown}{more}")
    if report.unused_2d:
        console.note(f"2D tensors not used: {', '.join(report.unused_2d[:6])}"
                     f"{' ...' if len(report.unused_2d) > 6 else ''}")


def render_map(console: Console, report) -> None:
    rows = [[t.key, t.label, t.source or "-", "x".join(map(str, t.shape))] for t in report.tensors]
    console.table(f"Tensor map: {report.source.label} -> {report.model} (dry run, nothing written)",
                  ["model tensor", "action", "2D source", "shape"], rows)


def _frames(c) -> str:
    return "pooled" if c.frames is None else f"{c.frames.lo}..{c.frames.hi}/{c.frames.length}"


def render_proof(console: Console, layers, whole) -> None:
    rows = [[escape(c.name), escape(c.source), _frames(c), f"{c.max_rel:.1e}",
             "[green]pass[/]" if c.passed else "[bold red]FAIL[/]"] for c in layers]
    tol = f"{layers[0].tol:.0e}" if layers else "-"
    console.table(f"Per-layer proof: each conv on a static clip vs its 2D conv, frames clear of padding "
                  f"(tol {tol})", ["layer", "2D layer", "frames", "rel err", "result"], rows,
                  justify=["left", "left", "right", "right", "left"], markup=True)
    if not whole.applicable:
        console.note(f"whole-model static-clip check: not applicable ({whole.reason})")
    else:
        worst = max(whole.checks, key=lambda c: c.max_rel) if whole.checks else None
        verdict = "[green]pass[/]" if whole.passed else "[bold red]FAIL[/]"
        console.info(f"whole-model static-clip check ({whole.frames_in} frames): {len(whole.checks)} layer "
                     f"outputs, worst max rel err {worst.max_rel:.2e} at {escape(worst.name)}: {verdict}"
                     if worst else f"whole-model static-clip check: no clean frames: {verdict}")


def checks_json(layers, whole) -> list[dict]:
    """The proof as the structured checks every command reports: {"name", "passed", "detail"}."""
    out = [{"name": f"layer {c.name}", "passed": c.passed,
            "detail": f"max rel err {c.max_rel:.2e} (tol {c.tol:.0e}) against 2D {c.source}"} for c in layers]
    if whole.applicable:
        out += [{"name": f"whole model {c.name}", "passed": c.passed,
                 "detail": f"max rel err {c.max_rel:.2e} (tol {c.tol:.0e})"} for c in whole.checks]
    return out


def proof_json(layers, whole) -> dict:
    def check(c):
        return {"layer": c.name, "source": c.source, "frames": None if c.frames is None else
                {"length": c.frames.length, "first": c.frames.lo, "last": c.frames.hi},
                "max_abs": c.max_abs, "max_rel": c.max_rel, "tol": c.tol, "passed": c.passed}
    return {"layers": [check(c) for c in layers],
            "whole_model": {"applicable": whole.applicable, "reason": whole.reason,
                            "passed": whole.passed, "frames": whole.frames_in,
                            "checks": [check(c) for c in whole.checks]}}
