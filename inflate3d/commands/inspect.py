"""``inflate3d inspect``: what a checkpoint is: format, container, scheme, tensors, metadata, and
the architecture its keys and shapes imply."""
from __future__ import annotations

from ..console import Console
from ..errors import Inflate3dError


def _pattern(flags) -> str:
    return "(" + ", ".join("".join(str(f) for f in stage) for stage in flags) + ")"


def run(console: Console, checkpoint: str, source_scheme: str | None, trust_pickle: bool,
        settings: tuple[str, ...] = ()) -> int:
    from . import early

    user_settings = early.settings(settings)
    early.checkpoint_file(checkpoint)

    from ..inflate.describe import describe_checkpoint

    try:
        r = describe_checkpoint(checkpoint, source_scheme=source_scheme, trust_pickle=trust_pickle,
                                settings=user_settings)
    except Inflate3dError as e:
        raise type(e)(str(e).replace(": given as ", ": --from ") + "; leave --from out or fix it"
                      if ": given as " in str(e) else str(e), exit_code=e.exit_code) from None
    console.emit_json({"ok": True, **r})
    if r.get("family"):  # another family (X3D, Swin, ViT): its own description
        return _family_report(console, r)
    pathways = "two pathways" if r["two_pathways"] else "one pathway"
    rows = [["file", r["input"]], ["format", r["format"]],
            ["container", f"{r['container'] or '-'}{', prefix ' + r['prefix'] if r['prefix'] else ''}"],
            ["scheme", f"{r['scheme']} (2D {r['two_d'].split(' (')[0]})" if r["two_d"] else f"{r['scheme']} ({pathways})"],
            ["tensors", f"{r['tensors']:,}"],
            ["values by dtype", ", ".join(f"{d}: {n:,}" for d, n in r["values_by_dtype"].items())]]
    if r["dropped_entries"]:
        rows.append(["non-weight entries", ", ".join(r["dropped_entries"])])
    for k, v in r["metadata"].items():
        rows.append([f"metadata.{k}", v])
    if r["two_d"]:
        rows.append(["architecture", f"2D {r['two_d'].split(' (')[0]}: inflate it to make a 3D network "
                     f"(inflate3d inflate {checkpoint} --arch ...)"])
    a = r.get("architecture")
    if a:
        m = a["matches"]
        rows.append(["architecture", f"{a['family']}, ResNet-{a['depth']}"
                     + (f" = {m['name']}" if m.get("name") else "")
                     + (f" with {m['settings']}" if m.get("settings") else "")
                     + (f" (no named match: {m['why']})" if m.get("why") else "")])
        for p, v in a["per_pathway"].items():
            if a["family"] == "tsm":
                rows.append([f"  {p}", f"2D ResNet, temporal shift {v['shift_place']}, {v['shifted_blocks']} shifted blocks"])
            else:
                rows.append([f"  {p}", f"stem {'x'.join(map(str, v['stem_kernel']))}, width {v['width']}, "
                             f"inflate {_pattern(v['inflate'])} {v['inflate_style']}"])
        if a["family"] == "slowfast":
            rows.append(["  fusion", f"kernel {a['fusion_kernel']}, lateral norm {a['lateral_norm']}, "
                         f"channel ratio {a['channel_ratio']}"])
        rows.append(["  head classes", str(a["head_classes"]) if a["head_classes"] else "none (backbone only)"])
        for k, f in a.get("facts", {}).items():
            rows.append([f"  {k}", f"{f['value']}  [{f['source']}]"])
        if a.get("config"):
            rows.append(["  file's config", ", ".join(f"{k}={v}" for k, v in a["config"].items())])
    console.table(None, ["", ""], rows)
    for note in (a or {}).get("notes", []):
        console.note(f"note: {note}")
    return 0


def _family_report(console: Console, r: dict) -> int:
    """A checkpoint of a registered family: the file facts, then the architecture as the family
    describes it."""
    architecture = r["architecture"]
    rows = [["file", r["input"]], ["format", r["format"]], ["container", r["container"] or "-"],
            ["scheme", r["scheme"]], ["tensors", f"{r['tensors']:,}"]]
    rows += [[f"metadata.{k}", v] for k, v in r["metadata"].items()]
    rows += [[f"architecture.{k}", str(v)] for k, v in architecture.items() if k != "notes"]
    console.table(None, ["", ""], rows)
    for note in architecture.get("notes", []):
        console.note(f"note: {note}")
    return 0
