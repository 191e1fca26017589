"""``inflate3d convert``: load -> map to native -> check against the architecture -> map to the
target scheme -> save to a temporary file -> prove that file: read back from disk it holds every
tensor bit for bit as meant, loads strictly into the native network and converts back to the
source bit for bit -> only then rename it. The inflation record rides along; the conversion is
recorded beside it."""
from __future__ import annotations

from pathlib import Path

from ..markup import escape

from ..console import Console, human_bytes
from ..errors import CHECK_FAILED, Inflate3dError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

# The inflation record (what the 3D net was inflated from, and how): carried unchanged through
# every conversion. The conversion itself is recorded beside it (``converted_from`` ...).
INFLATION_KEYS = ("arch", "method", "head", "seed", "source", "source_kind", "source_sha256",
                  "source_tensors_sha256", "source_depth")
CARRIED = ("epoch", "cfg")  # training state worth keeping; the optimizer's is not converted


def run(console: Console, checkpoint: str, output: str | None, source_scheme: str | None,
        target_scheme: str, arch: str | None, fmt: str | None, dtype: str | None, force: bool,
        dry_run: bool, trust_pickle: bool, settings: tuple[str, ...] = ()) -> int:
    """The work on weights runs on one torch thread (``inflate3d.threads``); the non-local
    blocks' measured gap (a forward pass) on all of them."""
    from ..threads import OneThread

    with OneThread() as one:
        return _run(console, checkpoint, output, source_scheme, target_scheme, arch, fmt, dtype, force,
                    dry_run, trust_pickle, settings, one)


def _run(console: Console, checkpoint: str, output: str | None, source_scheme: str | None,
         target_scheme: str, arch: str | None, fmt: str | None, dtype: str | None, force: bool,
         dry_run: bool, trust_pickle: bool, settings: tuple[str, ...], one) -> int:
    from . import early
    from ..paths import output_format

    arch, overrides = early.arch_name(arch), early.settings(settings)
    path = early.checkpoint_file(checkpoint)
    folder = None
    if not dry_run:  # refuse before any work; the commit checks again
        if output is None:
            raise Inflate3dError("convert: give an output path with -o (or use --dry-run)")
        if target_scheme == "huggingface":  # Hugging Face names: a folder for from_pretrained
            folder = _folder_family(target_scheme)
        if folder is not None:
            if fmt not in (None, "safetensors"):
                raise Inflate3dError("--to huggingface writes a folder with model.safetensors; leave out --format")
            fmt = "safetensors"
            folder.check_folder(Path(output), force=force)
        else:
            fmt = output_format(Path(output), fmt)
            if fmt == "pkl" and target_scheme != "caffe2":
                raise Inflate3dError(f"{output}: .pkl (--format pkl) holds Caffe2 blobs; use it with --to caffe2")
            if target_scheme == "caffe2" and fmt == "pth":
                raise Inflate3dError("Caffe2 checkpoints are .pkl: use --format pkl or safetensors")
            early.output_file(output, force=force, inputs=[path])

    from ..io.prefetch import Prefetch

    prefetch = Prefetch(path, tensors_digest=False)  # read (a safetensors file) while torch imports
    one.begin()  # after the torch-free checks: torch imported (``inflate3d.torch_import``)
    import torch

    from ..inflate.resnet2d import describe_2d
    from ..io.load import load_checkpoint
    from ..paths import make_parent, remove_made

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle, digest=True, prefetched=prefetch)
    source_sha256 = ckpt.sha256  # (a folder's weights file) hashed as read, or beside the conversion
    tensors = ckpt.tensors
    if dtype:
        tensors = {k: v.to(getattr(torch, DTYPES[dtype])) if v.is_floating_point() else v
                   for k, v in tensors.items()}
    two_d = describe_2d(tensors)
    if two_d and source_scheme != "torchvision" and not (arch or "").startswith("tsm_"):
        raise Inflate3dError(f"{checkpoint}: is a 2D {two_d}, not a video checkpoint; to make a 3D network "
                             f"from it use `inflate3d inflate {checkpoint} --arch ...`; to convert it as "
                             "the 2D weights of a TSM network pass --arch tsm_rNN or --from torchvision")
    conv = convert_any(tensors, source=source_scheme, target=target_scheme, origin=checkpoint, arch=arch,
                       recorded_arch=ckpt.metadata.get("arch"), config=ckpt.config, metadata=ckpt.metadata,
                       settings=overrides)
    if hasattr(conv, "native"):  # the ResNet family: non-local blocks are never proven equivalent
        with one.every():
            _note_non_local(conv)
    arch_text = conv.arch_name + (f" with {format_overrides(conv.arch_overrides)}" if conv.arch_overrides else "")
    if dry_run:
        console.table(f"Key map {conv.source_scheme} -> mmaction2 -> {conv.target_scheme} (dry run)",
                      ["source", "native", "target"], [[s or "(inserted)", n or "(dropped)", t or "(dropped)" if n else "-"]
                                                      for s, n, t in conv.key_map])
        _render_notes(console, conv, arch_text)
        console.emit_json({"ok": True, "dry_run": True, "input": checkpoint, **_json(conv), "map": [
            {"source": s, "native": n, "target": t} for s, n, t in conv.key_map]})
        return 0
    out = Path(output)
    meta = {**provenance(ckpt.metadata, conv, source=path.name, source_sha256=source_sha256()),
            "arch_settings": format_overrides(getattr(conv, "arch_overrides", {})),
            **getattr(conv, "metadata", {})}  # a family's record of what the weights do not carry
    state = carried_state(ckpt)
    conv.notes.extend(_state_notes(ckpt, state, conv.target_scheme, fmt))
    made = [] if folder is not None else make_parent(out)
    try:
        if folder is not None:
            proof, fmt = folder.write_folder(out, conv, meta, force=force), "huggingface folder"
        else:
            proof = _write_proven(out, conv, meta, state, tensors, fmt=fmt, force=force, inputs=[path])
    except BaseException:
        remove_made(made)
        raise
    _render_notes(console, conv, arch_text)
    for line in proof:
        console.info(f"[green]✓[/] {escape(line)}")
    size = sum(f.stat().st_size for f in out.iterdir()) if out.is_dir() else out.stat().st_size
    console.info(f"[bold green]wrote[/] {escape(str(out))} ({human_bytes(size)}, {fmt}, {conv.target_scheme}"
                 f"{', ' + escape(_layout(conv.target_scheme, state)) if fmt == 'pth' else ''})")
    console.emit_json({"ok": True, "input": checkpoint, "output": str(out), "format": fmt, "bytes": size,
                       **_json(conv), "checks": [check_json(line) for line in proof]})
    return 0


def convert_any(tensors, *, source: str | None, target: str, origin: str, arch: str | None = None,
                recorded_arch: str | None = None, **facts):
    """Convert through the family that owns these keys (or the target scheme); the ResNet family's
    tables otherwise. A family's arch defaults to the one the file's metadata records (X3D-XS, -S
    and -M, for one, have the same weights)."""
    from .. import families

    hit = families.for_keys(tensors.keys())
    family = hit[0] if hit is not None else families.for_scheme(target)
    if family is not None:
        conv = families.hook(family, "convert", "conversion")(tensors, source=source, target=target,
                                                              origin=origin, arch=arch or recorded_arch,
                                                              config=facts.get("config"),
                                                              metadata=facts.get("metadata"),
                                                              settings=facts.get("settings"))
        if recorded_arch and not arch:
            conv.notes.append(f"architecture {recorded_arch} as the file's metadata records (--arch overrides it)")
        return conv
    from ..inflate.convert import convert

    return convert(tensors, source=source, target=target, origin=origin, arch=arch, **facts)


def provenance(recorded: dict[str, str], conv, *, source: str, source_sha256: str) -> dict[str, str]:
    """The output's metadata: the input's inflation record, unchanged, plus this conversion."""
    meta = {"format": "inflate3d", "inflate3d_version": _version(), "scheme": conv.target_scheme}
    inflated = recorded.get("format") == "inflate3d" and "method" in recorded and "source_kind" in recorded
    if inflated:
        meta.update({k: recorded[k] for k in INFLATION_KEYS if k in recorded})
    meta.setdefault("arch", conv.arch_name or "")
    meta.update({"converted_from": source, "converted_from_sha256": source_sha256,
                 "source_scheme": conv.source_scheme, "target_scheme": conv.target_scheme})
    return meta


def carried_state(ckpt) -> dict:
    """``epoch`` and ``cfg`` from the input: its container's entries, else its metadata."""
    state = {}
    for key in CARRIED:
        value = ckpt.extras.get(key, ckpt.metadata.get(key))
        if value is None:
            continue
        if key == "epoch":
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        state[key] = value
    return state


def _state_notes(ckpt, state: dict, target: str, fmt: str) -> list[str]:
    notes = []
    dropped = [k for k in ckpt.dropped if k not in state and k not in ("meta", "inflate3d")]
    optim = [k for k in dropped if "optim" in k]
    if optim:
        notes.append(f"dropped the optimizer state ({', '.join(optim)}): it belongs to the source's "
                     "parameter order and is not converted")
    if other := [k for k in dropped if k not in optim]:
        notes.append(f"not carried: {', '.join(other)}")
    if state and fmt == "pth" and target in PLAIN:
        notes.append(f"{', '.join(state)} not carried: {target}'s plain state dict has no place for them "
                     "(nor for the provenance record); write .safetensors to keep them")
    elif fmt == "pth" and target in PLAIN:
        notes.append(f"{target}'s plain state dict has no place for the provenance record; write "
                     ".safetensors to keep it")
    return notes


PLAIN = ("torchvision3d", "torchvision", "torchvision_video")


def _folder_family(target: str):
    """The family that writes ``target`` as a folder (Hugging Face names), else None."""
    from .. import families

    family = families.for_scheme(target)
    return family if family is not None and hasattr(family, "write_folder") and target == "huggingface" else None


def _note_non_local(conv) -> None:
    """Non-local blocks convert by name, never by maths: say how far apart the two codebases'
    blocks are on these weights (measured), and which maths the converted file keeps."""
    from ..verify.non_local_gap import non_local_gap, non_local_settings

    _, cfg = non_local_settings(conv.arch_name, conv.arch_overrides)
    if cfg is None:
        return
    gap = non_local_gap(conv.arch_name, conv.arch_overrides, conv.native, conv.arch.num_classes)
    kept = "PySlowFast's (pool before phi and g)" if cfg.get("pool_first") else "mmaction2's (pool after phi and g)"
    other = "mmaction2's" if cfg.get("pool_first") else "PySlowFast's"
    conv.notes.append(
        f"NOT EQUIVALENT: non-local blocks are converted by name only. PySlowFast pools before phi and g, "
        f"mmaction2 after; the file keeps {kept} maths as settings (inflate3d's load_model computes them), "
        f"but {other} non-local on the same weights gives outputs that differ by {gap:.3g} (max relative, one "
        "seeded clip). Not proven; retrain or fine-tune the non-local blocks in the other codebase"
        + ("; mmaction2's own NonLocal3d has no conv_out bias, so it cannot load this file strictly"
           if cfg.get("out_bias") and conv.target_scheme == "mmaction2" else "")
        + ("; PySlowFast's Nonlocal has a conv_out bias that this file does not hold: load it with "
           "strict=False (the bias then keeps PySlowFast's zero init)"
           if not cfg.get("out_bias") and conv.target_scheme in ("pyslowfast", "caffe2") else ""))


def format_overrides(overrides: dict) -> str:
    """``{'slow_pathway': {'lateral_norm': True}}`` -> ``slow_pathway.lateral_norm=True``."""
    from ..settings import format_settings

    return format_settings(overrides)


def check_json(line: str) -> dict:
    """A proof line as a structured check: {"name", "passed", "detail"} (a failed proof raises)."""
    name = ("read_back" if line.startswith("read back") else
            "strict_load" if line.startswith("loads strictly") else
            "round_trip" if line.startswith("converts back") else
            "round_trip_in_function" if "round-trip in function" in line else "coverage")
    return {"name": name, "passed": True, "detail": line}


def _version() -> str:
    from .. import __version__

    return __version__


def _write_proven(out: Path, conv, meta: dict, state: dict, source_tensors, *, fmt: str, force: bool,
                  inputs) -> list[str]:
    """Write to a temporary file, prove that file from its bytes on disk, and only then give it
    its name: an output that fails its proof is never left behind."""
    from ..io.caffe2 import write_blobs
    from ..io.proof import write_proven
    from ..io.save import atomic_output, write_pth

    with_state = {**meta, **{k: str(v) for k, v in state.items()}}
    obj = container(conv.target_scheme, conv.tensors, meta, state) if fmt == "pth" else None
    recorded = _recorded_meta(obj) if fmt == "pth" else with_state
    with atomic_output(out, force=force, inputs=inputs) as f:
        if fmt == "safetensors":  # read back tensor by tensor as it is written
            specs = [(k, tuple(v.shape), v.dtype) for k, v in conv.tensors.items()]
            written_file = write_proven(f, specs, conv.tensors.items(), with_state, origin=str(out))
            # Every tensor on disk is now proven bit for bit, in name, order, shape and dtype, the
            # tensor it was written from: the checks below run on those, as they would on copies
            # read from disk (keeping such copies cost a fresh 128 MB buffer for SlowFast-R50,
            # 0.09 s of page faults here, and as much peak memory).
            return _check_read_back(out, conv, source_tensors, fmt, {k: conv.tensors[k] for k in written_file.keys()})
        if fmt == "pkl":
            write_blobs(f, conv.tensors, with_state)
        else:
            write_pth(f, obj)
        f.flush()
        return _prove(Path(f.name), out, conv, source_tensors, fmt, recorded)


def container(scheme: str, tensors: dict, meta: dict, state: dict | None = None) -> object:
    """The target codebase's own checkpoint layout; ``epoch`` and ``cfg`` where it keeps them
    (mmaction2/mmengine: in ``meta``; PySlowFast: beside ``model_state``; TSM: ``epoch``), in the
    inflate3d record otherwise."""
    state = state or {}
    if scheme == "mmaction2":
        return {"state_dict": tensors, "meta": {**meta, **state}}
    record = {**meta, **{k: str(v) for k, v in state.items()}}
    if scheme == "pyslowfast":
        return {**({"epoch": state["epoch"]} if "epoch" in state else {}), "model_state": tensors,
                **({"cfg": state["cfg"]} if "cfg" in state else {}), "inflate3d": record}
    if scheme == "pytorchvideo":
        return {"model_state": tensors, "inflate3d": record}
    if scheme == "timesformer":  # facebookresearch/TimeSformer: PySlowFast's wrapper holds the net as 'model'
        return {**({"epoch": state["epoch"]} if "epoch" in state else {"epoch": 0}),
                "model_state": {f"model.{k}": v for k, v in tensors.items()}, "inflate3d": record}
    if scheme == "tsm":  # the TSM code saves its DataParallel model
        return {**({"epoch": state["epoch"]} if "epoch" in state else {}),
                "state_dict": {f"module.{k}": v for k, v in tensors.items()}, "inflate3d": record}
    return tensors


def _layout(scheme: str, state: dict) -> str:
    """What the target's container holds, as written: ``{'model_state', 'epoch', ...}``."""
    obj = container(scheme, {}, {}, state)
    return "{" + ", ".join(repr(k) for k in obj) + "}" if obj else "a plain state dict"


def _recorded_meta(obj) -> dict[str, str]:
    """The metadata a reader finds in ``obj`` (as ``load_checkpoint`` reports it: strings)."""
    for key in ("meta", "inflate3d"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return {str(k): str(v) for k, v in obj[key].items()}
    return {}


def _prove(path: Path, out: Path, conv, source_tensors, fmt: str, recorded: dict[str, str]) -> list[str]:
    """Read the written file back: every tensor (and the metadata) must be bit for bit what was
    meant to be written; those tensors, read from disk, must load strictly into the native
    architecture and convert back to the source scheme bit for bit."""
    from ..io.proof import prove_file

    caffe2_float = conv.target_scheme == "caffe2" and fmt == "pkl"  # Caffe2 blobs are float32
    expected = ((k, v.float() if caffe2_float and v.is_floating_point() else v) for k, v in conv.tensors.items())
    kept: dict = {}  # the tensors read back by the proof: the file is read once
    written_file = prove_file(path, expected, origin=str(out), metadata=recorded, keep=kept)
    return _check_read_back(out, conv, source_tensors, fmt, {k: kept[k] for k in written_file.keys()})


def _check_read_back(out: Path, conv, source_tensors, fmt: str, written: dict) -> list[str]:
    """The tensors on disk (``written``: read back, or the tensors they were proven bit for bit
    equal to) must load strictly into the native architecture and convert back to the source bit
    for bit.

    A tensor that converts back as the very tensor read back under name ``t``, where what was
    written under ``t`` is the source tensor itself (a renamed tensor: most of them), is equal to
    the source already: the read-back compared those bytes with that tensor. Only the others are
    compared again."""
    from ..io.proof import bit_equal
    from ..slowfast.archs import state_dict_shapes
    from ..verify.strict import check_shapes

    caffe2_float = conv.target_scheme == "caffe2" and fmt == "pkl"  # Caffe2 blobs are float32
    native = written if conv.target_scheme == "mmaction2" else \
        convert_any(written, source=conv.target_scheme, target="mmaction2", origin=str(out), arch=conv.arch_name,
                    settings=conv.arch_overrides).tensors
    check_shapes(state_dict_shapes(conv.arch_name, num_classes=conv.arch.num_classes, **conv.arch_overrides),
                 native, str(out))
    back = convert_any(written, source=conv.target_scheme, target=conv.source_scheme, origin=str(out),
                       arch=conv.arch_name, settings=conv.arch_overrides).tensors
    caffe2_counters = conv.target_scheme == "caffe2"  # Caffe2 cannot store BN batch counters
    if aliases := getattr(conv, "source_names", None):  # a family that reads names it does not write
        read_as = set(aliases.values())
        source_tensors = {**{k: v for k, v in source_tensors.items() if k not in read_as},
                          **{written_as: source_tensors[k] for written_as, k in aliases.items()}}
    expected_back = {k: v for k, v in source_tensors.items() if k in back
                     and not (caffe2_counters and k.endswith("num_batches_tracked"))}
    lost = [k for k in source_tensors if k not in back]
    read_back_as = {id(v): k for k, v in written.items()}  # kept alive by ``written``: ids are unique

    def renamed_source(k: str, v) -> bool:  # written under t as the source tensor itself, proven on disk
        t = read_back_as.get(id(back[k]))
        return not caffe2_float and t is not None and conv.tensors.get(t) is v

    differ = [k for k, v in expected_back.items() if not renamed_source(k, v)
              and not bit_equal(back[k], v.float() if caffe2_float and v.is_floating_point() else v)]
    in_function = getattr(conv, "round_trip_in_function", None)  # a family step exact in function only
    function_check = in_function(expected_back, back, differ) if differ and in_function else None  # or raises
    exact = len(expected_back) - (len(differ) if function_check else 0)
    differ = [] if function_check else differ
    extra = sorted(set(back) - set(source_tensors))
    if differ or extra:
        what = f"{len(differ)} tensors differ: {', '.join(differ[:3])}" if differ else \
            f"it gives {len(extra)} names the source does not have: {', '.join(extra[:3])}"
        raise Inflate3dError(f"{out}: converting back does not reproduce the source ({what})", exit_code=CHECK_FAILED)
    checks = [f"read back from disk: {len(written)} tensors bit for bit as written",
              f"loads strictly into {conv.arch_name} ({len(native)} tensors, all shapes equal)",
              f"converts back to {conv.source_scheme} bit for bit ({exact} tensors)"]
    if function_check:
        checks.append(function_check)
    if lost:
        checks.append(f"{len(lost)} source entries have no {conv.target_scheme} counterpart (see notes)")
    return checks


def _render_notes(console: Console, conv, arch_text: str) -> None:
    console.note(f"{conv.source_scheme} -> {conv.target_scheme}: {len(conv.tensors)} tensors, "
                 f"{'two pathways' if conv.two_pathways else 'one pathway'}, architecture {arch_text}")
    for note in conv.notes:
        console.note(f"note: {note}")


def _json(conv) -> dict:
    return {"source_scheme": conv.source_scheme, "target_scheme": conv.target_scheme,
            "arch": conv.arch_name, "arch_settings": format_overrides(conv.arch_overrides),
            "tensors": len(conv.tensors), "notes": conv.notes}
