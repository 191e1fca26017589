"""``inflate3d convert``: load -> map to native -> check against the architecture -> map to the
target scheme -> save (atomically) -> prove it: the output converts back to the source bit for bit
and loads strictly into the native network."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..console import Console, human_bytes
from ..errors import CHECK_FAILED, Inflate3dError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
CONTAINERS = {"mmaction2": "{'state_dict', 'meta'}", "pyslowfast": "{'model_state', 'epoch'}",
              "pytorchvideo": "{'model_state'}", "torchvision3d": "a plain state dict",
              "torchvision": "a plain state dict", "tsm": "{'state_dict' with module. keys, 'epoch'}"}


def run(console: Console, checkpoint: str, output: str | None, source_scheme: str | None,
        target_scheme: str, arch: str | None, settings: tuple, fmt: str | None, dtype: str | None,
        force: bool, dry_run: bool, trust_pickle: bool) -> int:
    from . import early

    arch, user_settings = early.arch_name(arch), early.settings(settings)
    path = early.checkpoint_file(checkpoint)
    if not dry_run:  # refuse before any work; the commit checks again
        if output is None:
            raise Inflate3dError("convert: give an output path with -o (or use --dry-run)")
        fmt = fmt or "safetensors"
        if fmt == "pkl" and target_scheme != "caffe2":
            raise Inflate3dError("--format pkl writes Caffe2 blobs; use it with --to caffe2")
        if target_scheme == "caffe2" and fmt == "pth":
            raise Inflate3dError("Caffe2 checkpoints are .pkl: use --format pkl or safetensors")
        early.output_file(output, force=force, inputs=[path])

    import torch

    from ..inflate.convert import convert
    from ..inflate.resnet2d import describe_2d
    from ..io.load import load_checkpoint, sha256_in_background
    from ..paths import make_parent, remove_made

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    source_sha256 = sha256_in_background(path)  # overlaps with the conversion below
    tensors = ckpt.tensors
    if dtype:
        tensors = {k: v.to(getattr(torch, DTYPES[dtype])) if v.is_floating_point() else v
                   for k, v in tensors.items()}
    two_d = describe_2d(tensors)
    if two_d and source_scheme != "torchvision" and not (arch or "").startswith("tsm_"):
        raise Inflate3dError(f"{checkpoint}: is a 2D {two_d}, not a video checkpoint; to make a 3D network "
                             f"from it use `inflate3d inflate {checkpoint} --arch ...`; to convert it as "
                             "the 2D weights of a TSM network pass --arch tsm_rNN or --from torchvision")
    conv = convert(tensors, source=source_scheme, target=target_scheme, origin=checkpoint, arch=arch,
                   settings=user_settings)
    arch_text = conv.arch_name + (f" with {format_overrides(conv.arch_overrides)}" if conv.arch_overrides else "")
    if dry_run:
        console.table(f"Key map {conv.source_scheme} -> mmaction2 -> {conv.target_scheme} (dry run)",
                      ["source", "native", "target"], [[s, n or "(dropped)", t or "(dropped)" if n else "-"]
                                                      for s, n, t in conv.key_map])
        _render_notes(console, conv, arch_text)
        console.emit_json({"ok": True, "dry_run": True, "input": checkpoint, **_json(conv), "map": [
            {"source": s, "native": n, "target": t} for s, n, t in conv.key_map]})
        return 0
    out = Path(output)
    meta = {"format": "inflate3d", "inflate3d_version": _version(), "source": path.name,
            "source_sha256": source_sha256(), "source_scheme": conv.source_scheme,
            "target_scheme": conv.target_scheme, "arch": conv.arch_name or "",
            "arch_settings": format_overrides(conv.arch_overrides)}
    made = make_parent(out)
    try:
        proof = _write_proven(out, conv, meta, tensors, fmt=fmt, force=force, inputs=[path],
                              trust_pickle=trust_pickle)
    except BaseException:
        remove_made(made)
        raise
    _render_notes(console, conv, arch_text)
    for line in proof:
        console.info(f"[green]✓[/] {escape(line)}")
    size = out.stat().st_size
    console.info(f"[bold green]wrote[/] {escape(str(out))} ({human_bytes(size)}, {fmt}, {conv.target_scheme}"
                 f"{', ' + escape(CONTAINERS.get(conv.target_scheme, '')) if fmt == 'pth' else ''})")
    console.emit_json({"ok": True, "input": checkpoint, "output": str(out), "format": fmt, "bytes": size,
                       **_json(conv), "checks": [check_json(line) for line in proof]})
    return 0


def format_overrides(overrides: dict) -> str:
    """``{'slow_pathway': {'lateral_norm': True}}`` -> ``slow_pathway.lateral_norm=True``."""
    from ..settings import format_settings

    return format_settings(overrides)


def check_json(line: str) -> dict:
    """A proof line as a structured check: {"name", "passed", "detail"}."""
    name = ("strict_load" if line.startswith("loads strictly") else
            "round_trip" if line.startswith("converts back") else "coverage")
    return {"name": name, "passed": True, "detail": line}


def _version() -> str:
    from .. import __version__

    return __version__


def _write_proven(out: Path, conv, meta: dict, source_tensors, *, fmt: str, force: bool, inputs,
                  trust_pickle: bool) -> list[str]:
    """Write to a temporary file, prove that file, and only then give it its name: an output
    that fails its proof is never left behind."""
    import torch

    from ..io.caffe2 import write_blobs
    from ..io.save import atomic_output, write_safetensors

    with atomic_output(out, force=force, inputs=inputs) as f:
        if fmt == "safetensors":
            specs = [(k, tuple(v.shape), v.dtype) for k, v in conv.tensors.items()]
            write_safetensors(f, specs, conv.tensors.items(), meta)
        elif fmt == "pkl":
            write_blobs(f, conv.tensors, meta)
        else:
            torch.save(container(conv.target_scheme, conv.tensors, meta), f)
        f.flush()
        return _prove(Path(f.name), out, conv, source_tensors, fmt, trust_pickle)


def container(scheme: str, tensors: dict, meta: dict) -> object:
    """The target codebase's own checkpoint layout."""
    if scheme == "mmaction2":
        return {"state_dict": tensors, "meta": meta}
    if scheme == "pyslowfast":
        return {"epoch": 0, "model_state": tensors, "inflate3d": meta}
    if scheme == "pytorchvideo":
        return {"model_state": tensors, "inflate3d": meta}
    if scheme == "tsm":  # the TSM code saves its DataParallel model
        return {"epoch": 0, "state_dict": {f"module.{k}": v for k, v in tensors.items()}, "inflate3d": meta}
    return tensors


def _prove(path: Path, out: Path, conv, source_tensors, fmt: str, trust_pickle: bool) -> list[str]:
    """What was written must load strictly into the native architecture and convert back to the
    source scheme bit for bit."""

    from ..diff.metrics import bit_equal
    from ..inflate.convert import convert
    from ..slowfast.archs import state_dict_shapes
    from ..verify.strict import check_shapes

    written = _written(path, out, conv, fmt, trust_pickle)
    native = written if conv.target_scheme == "mmaction2" else \
        convert(written, source=conv.target_scheme, target="mmaction2", origin=str(out)).tensors
    check_shapes(state_dict_shapes(conv.arch_name, num_classes=conv.arch.num_classes, **conv.arch_overrides),
                 native, str(out))
    back = convert(written, source=conv.target_scheme, target=conv.source_scheme, origin=str(out)).tensors
    caffe2_counters = conv.target_scheme == "caffe2"  # Caffe2 cannot store BN batch counters
    expected = {k: v for k, v in source_tensors.items() if k in back
                and not (caffe2_counters and k.endswith("num_batches_tracked"))}
    lost = [k for k in source_tensors if k not in back]
    caffe2_float = conv.target_scheme == "caffe2"
    differ = [k for k, v in expected.items()
              if not bit_equal(back[k], v.float() if caffe2_float and v.is_floating_point() else v)]
    if differ or set(back) - set(source_tensors):
        raise Inflate3dError(f"{out}: converting back does not reproduce the source ({len(differ)} tensors "
                             f"differ: {', '.join(differ[:3])})", exit_code=CHECK_FAILED)
    checks = [f"loads strictly into {conv.arch_name} ({len(native)} tensors, all shapes equal)",
              f"converts back to {conv.source_scheme} bit for bit ({len(expected)} tensors)"]
    if lost:
        checks.append(f"{len(lost)} source entries have no {conv.target_scheme} counterpart (see notes)")
    return checks


def _written(path: Path, out: Path, conv, fmt: str, trust_pickle: bool) -> dict:
    """What the file holds. For safetensors the header (every key, shape, dtype) is read from disk
    and the bytes are the tensors just streamed from memory; other formats are loaded back."""
    from ..io.load import load_checkpoint

    if fmt != "safetensors":
        return load_checkpoint(path, trust_pickle=trust_pickle).tensors
    from safetensors import safe_open

    from ..io.save import ST_DTYPES

    with safe_open(str(path), framework="pt") as f:
        header = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    if header != {k: (tuple(v.shape), ST_DTYPES[v.dtype]) for k, v in conv.tensors.items()}:
        raise Inflate3dError(f"{out}: the written header does not describe the converted tensors",
                             exit_code=CHECK_FAILED)
    return conv.tensors


def _render_notes(console: Console, conv, arch_text: str) -> None:
    console.note(f"{conv.source_scheme} -> {conv.target_scheme}: {len(conv.tensors)} tensors, "
                 f"{'two pathways' if conv.two_pathways else 'one pathway'}, architecture {arch_text}")
    for note in conv.notes:
        console.note(f"note: {note}")


def _json(conv) -> dict:
    return {"source_scheme": conv.source_scheme, "target_scheme": conv.target_scheme,
            "arch": conv.arch_name, "arch_settings": format_overrides(conv.arch_overrides),
            "tensors": len(conv.tensors), "notes": conv.notes}
