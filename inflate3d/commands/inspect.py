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


def _plain(value):
    """JSON-friendly: tuples as lists, recursively."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def run(console: Console, checkpoint: str, trust_pickle: bool, settings: tuple[str, ...] = ()) -> int:
    from ..inflate.convert import match_arch, scheme, to_native
    from ..inflate.detect import detect_scheme, infer_arch
    from .. import families
    from ..inflate.facts import facts_for
    from ..inflate.settings import parse_settings
    from ..io.load import load_checkpoint

    path = Path(checkpoint)
    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    hit = families.for_keys(ckpt.tensors)
    if hit is not None:
        return _family_report(console, path, ckpt, *hit)
    name, two = detect_scheme(ckpt.tensors, checkpoint)
    by_dtype: Counter = Counter()
    for t in ckpt.tensors.values():
        by_dtype[str(t.dtype).replace("torch.", "")] += t.numel()
    report = {"path": str(path), "format": ckpt.format, "container": ckpt.container, "prefix": ckpt.prefix,
              "dropped_entries": ckpt.dropped, "scheme": name, "tensors": len(ckpt.tensors),
              "values_by_dtype": dict(by_dtype), "metadata": ckpt.metadata}
    arch = None
    if name != "torchvision3d" or any(t.dim() == 5 for t in ckpt.tensors.values()):
        src = scheme(name)
        native, _, notes = to_native(ckpt.tensors, src, two, checkpoint)
        info = infer_arch(native, checkpoint)
        info.facts = facts_for(info, scheme=name, two=two,
                               names_pool2=src.pooled_names(ckpt.tensors) if src.single_pooled and not two
                               else None, config=ckpt.config, metadata=ckpt.metadata,
                               settings=parse_settings(settings))
        try:
            named, overrides = match_arch(native, info, checkpoint)
            arch = {"name": named.name, "overrides": format_overrides(overrides)}
        except Inflate3dError as e:  # inspection reports, it does not refuse
            arch = {"name": None, "why": str(e)}
        report["architecture"] = {
            "family": info.family, "depth": info.depth, "pathways": len(info.pathways),
            "lateral_norm": info.lateral_norm, "fusion_kernel": info.fusion_kernel,
            "channel_ratio": info.channel_ratio, "head_classes": info.num_classes, "matches": arch,
            "per_pathway": {p: _pathway_json(v) for p, v in info.pathways.items()},
            "facts": {k: {"value": _plain(f.value), "source": f.source} for k, f in info.facts.items()},
            "config": info.record,
            "notes": notes + info.notes}
    console.emit_json(report)
    rows = [["file", str(path)], ["format", ckpt.format],
            ["container", f"{ckpt.container or '-'}{', prefix ' + ckpt.prefix if ckpt.prefix else ''}"],
            ["scheme", f"{name} ({'two pathways' if two else 'one pathway'})"],
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
                     + (f" with {arch['overrides']}" if arch and arch.get("overrides") else "")
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
        for k, f in info.facts.items():
            rows.append([f"  {k}", f"{_plain(f.value)}  [{f.source}]"])
        if info.record:
            rows.append(["  file's config", ", ".join(f"{k}={v}" for k, v in info.record.items())])
    console.table(None, ["", ""], rows)
    for note in report.get("architecture", {}).get("notes", []):
        console.note(f"note: {note}")
    return 0


def _family_report(console: Console, path: Path, ckpt, family, scheme_name: str) -> int:
    """A checkpoint of a registered family: the file facts here, the architecture from the family."""
    from .. import families

    architecture = families.hook(family, "describe", "inspect")(ckpt.tensors, scheme_name, str(path))
    report = {"path": str(path), "format": ckpt.format, "container": ckpt.container, "prefix": ckpt.prefix,
              "dropped_entries": ckpt.dropped, "scheme": scheme_name, "tensors": len(ckpt.tensors),
              "metadata": ckpt.metadata, "architecture": architecture}
    console.emit_json(report)
    rows = [["file", str(path)], ["format", ckpt.format], ["container", ckpt.container or "-"],
            ["scheme", scheme_name], ["tensors", f"{len(ckpt.tensors):,}"]]
    rows += [[f"metadata.{k}", v] for k, v in ckpt.metadata.items()]
    rows += [[f"architecture.{k}", str(v)] for k, v in architecture.items() if k != "notes"]
    console.table(None, ["", ""], rows)
    for note in architecture.get("notes", []):
        console.note(f"note: {note}")
    return 0
