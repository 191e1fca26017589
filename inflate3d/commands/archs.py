"""``inflate3d archs``: the named architectures, with parameter counts from meta-device builds."""
from __future__ import annotations

from ..console import Console


def run(console: Console) -> int:
    from ..slowfast.archs import all_archs, build_model, count_parameters

    rows = []
    for arch in all_archs().values():
        model = build_model(arch, num_classes=400, device="meta", init=False)
        backbone = count_parameters(model.backbone)
        rows.append({"name": arch.name, "family": arch.family, "depth": arch.depth,
                     "pathways": arch.pathways, "parameters": count_parameters(model),
                     "backbone_parameters": backbone,
                     "head_in_channels": model.cls_head.in_channels if model.cls_head is not None else None,
                     "clip": list(arch.clip), "description": arch.description,
                     "origin": list(arch.origin)})
    console.emit_json({"archs": rows})
    console.table("Named architectures (parameters with a 400-class head)",
                  ["name", "parameters", "clip TxHxW", "description", "published as"],
                  [[r["name"], f"{r['parameters']:,}", "x".join(map(str, r["clip"])), r["description"],
                    "; ".join(r["origin"]) or "-"]
                   for r in rows], justify=["left", "right", "right", "left", "left"])
    return 0
