"""``inflate3d inspect``: what a checkpoint is: format, container, scheme, tensors, metadata, and
the architecture its keys and shapes imply."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..console import Console
from ..errors import Inflate3dError
from .convert import format_overrides


def _pattern(flags) -> str:
    return "(" + ", ".join("".join(str(f) for f in stage) for stage in flags) + ")"


def _pathway_json(v: dict) -> dict:
    if "shift_place" in v:  # TSM
        return {"stage_blocks": list(v["stage_blocks"]), "shift_place": v["shift_place"], "shifted_blocks": v["shifted"]}
    return {"stem_kernel": list(v["conv1_kernel"]), "stage_blocks": list(v["stage_blocks"]),
            "inflate": [list(s) for s in v["inflate"]], "inflate_style": v["inflate_style"], "width": v["base_channels"]}


def run(console: Console, checkpoint: str, source_scheme: str | None, trust_pickle: bool) -> int:
    from . import early

    path = early.checkpoint_file(checkpoint)

    from ..inflate.convert import HEAD_REORDERED, match_arch, scheme, to_native
    from ..inflate.detect import detect_scheme, infer_arch
    from ..inflate.resnet2d import describe_2d
    from ..io.load import load_checkpoint

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    name, two = detect_scheme(ckpt.tensors, checkpoint)
    two_d = describe_2d(ckpt.tensors) if name == "torchvision3d" else None
    if two_d:
        name = "torchvision"
    if source_scheme and source_scheme != name:
        if source_scheme == "torchvision3d" and name == "torchvision":
            raise Inflate3dError(f"{checkpoint}: --from torchvision3d, but its kernels are 2D (a {two_d}); "
                                 "use --from torchvision or leave --from out")
        raise Inflate3dError(f"{checkpoint}: --from {source_scheme}, but its keys are {name}'s "
                             f"(e.g. {next(iter(ckpt.tensors))}); leave --from out or fix it")
    by_dtype: Counter = Counter()
    for t in ckpt.tensors.values():
        by_dtype[str(t.dtype).replace("torch.", "")] += t.numel()
    report = {"ok": True, "input": str(path), "format": ckpt.format, "container": ckpt.container,
              "prefix": ckpt.prefix, "dropped_entries": ckpt.dropped, "scheme": name,
              "two_d": two_d, "tensors": len(ckpt.tensors),
              "values_by_dtype": dict(by_dtype), "metadata": ckpt.metadata}
    arch = None
    if not two_d:
        native, _, notes = to_native(ckpt.tensors, scheme(name), two, checkpoint)
        # inspection changes nothing: say what a conversion would do, not what was done
        notes = [("head columns are [slow, fast]; mmaction2's are [fast, slow] (converting reorders them)"
                  if n == HEAD_REORDERED else n) for n in notes]
        info = infer_arch(native, checkpoint)
        try:
            named, overrides = match_arch(native, info, checkpoint)
            arch = {"name": named.name, "settings": format_overrides(overrides)}
        except Inflate3dError as e:  # inspection reports, it does not refuse
            arch = {"name": None, "why": str(e)}
        report["architecture"] = {
            "family": info.family, "depth": info.depth, "pathways": len(info.pathways),
            "lateral_norm": info.lateral_norm, "fusion_kernel": info.fusion_kernel,
            "channel_ratio": info.channel_ratio, "head_classes": info.num_classes, "matches": arch,
            "per_pathway": {p: _pathway_json(v) for p, v in info.pathways.items()},
            "notes": notes + info.notes}
    console.emit_json(report)
    rows = [["file", str(path)], ["format", ckpt.format],
            ["container", f"{ckpt.container or '-'}{', prefix ' + ckpt.prefix if ckpt.prefix else ''}"],
            ["scheme", f"{name} (2D {two_d})" if two_d else f"{name} ({'two pathways' if two else 'one pathway'})"],
            ["tensors", f"{len(ckpt.tensors):,}"],
            ["values by dtype", ", ".join(f"{d}: {n:,}" for d, n in by_dtype.items())]]
    if ckpt.dropped:
        rows.append(["non-weight entries", ", ".join(ckpt.dropped)])
    for k, v in ckpt.metadata.items():
        rows.append([f"metadata.{k}", v])
    if "architecture" in report:
        a = report["architecture"]
        rows.append(["architecture", f"{a['family']}, ResNet-{a['depth']}"
                     + (f" = {arch['name']}" if arch and arch.get("name") else "")
                     + (f" with {arch['settings']}" if arch and arch.get("settings") else "")
                     + (f" (no named match: {arch['why']})" if arch and arch.get("why") else "")])
        for p, v in info.pathways.items():
            if info.family == "tsm":
                rows.append([f"  {p}", f"2D ResNet, temporal shift {v['shift_place']}, {v['shifted']} shifted blocks"])
            else:
                rows.append([f"  {p}", f"stem {'x'.join(map(str, v['conv1_kernel']))}, width {v['base_channels']}, "
                             f"inflate {_pattern(v['inflate'])} {v['inflate_style']}"])
        if info.family == "slowfast":
            rows.append(["  fusion", f"kernel {info.fusion_kernel}, lateral norm {info.lateral_norm}, "
                         f"channel ratio {info.channel_ratio}"])
        rows.append(["  head classes", str(info.num_classes) if info.num_classes else "none (backbone only)"])
    if two_d:
        rows.append(["architecture", f"2D {two_d.split(' (')[0]}: inflate it to make a 3D network "
                     f"(inflate3d inflate {checkpoint} --arch ...)"])
    console.table(None, ["", ""], rows)
    for note in report.get("architecture", {}).get("notes", []):
        console.note(f"note: {note}")
    return 0
