"""Swin key tables (two-way, ``inflate.schemes.table``) and the structural steps renames cannot do.

2D sources map to one canonical 2D naming, the original Microsoft one (``layers.i.downsample`` at
the end of stage i, final ``norm``, ``head``), which mmaction2's ``inflate_weights`` reads; buffers
(``relative_position_index``, ``attn_mask``) are dropped there because inflation rebuilds them.
3D checkpoints map to the native (mmaction2 recognizer) names.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import Inflate3dError
from ..inflate.schemes.table import KeyTable
from ..io.structure import cat_rows
from .detect import detect_2d, detect_3d  # noqa: F401 (their home was here)

if TYPE_CHECKING:  # torch-free to import: the structural steps take shape records too (``inspect``)
    import torch

STAGES = 4  # tables are written for up to four stages (the most any Swin has)
_BUFFERS = [("{k**}.relative_position_index", None), ("{k**}.attn_mask", None)]

MICROSOFT = KeyTable.of("microsoft", [*_BUFFERS, ("{k**}", "{k**}")])

TIMM = KeyTable.of("timm", [  # timm >= 0.9: the merge opens stage i+1
    *_BUFFERS,
    ("layers.{i+1}.downsample.{t**}", "layers.{i}.downsample.{t**}"),
    ("head.fc.{t*}", "head.{t*}"),
    ("{k**}", "{k**}"),
])


def _torchvision2d_rows() -> list[tuple[str | None, str | None]]:
    rows: list[tuple[str | None, str | None]] = [("features.0.0.{t*}", "patch_embed.proj.{t*}"),
                                                  ("features.0.2.{t*}", "patch_embed.norm.{t*}")]
    for i in range(STAGES):
        s, b = f"features.{2 * i + 1}.{{j}}", f"layers.{i}.blocks.{{j}}"
        rows += [(f"{s}.attn.relative_position_index", None),
                 (f"{s}.mlp.0.{{t*}}", f"{b}.mlp.fc1.{{t*}}"), (f"{s}.mlp.3.{{t*}}", f"{b}.mlp.fc2.{{t*}}"),
                 (f"{s}.{{k**}}", f"{b}.{{k**}}"),
                 (f"features.{2 * i + 2}.{{m*}}.{{t*}}", f"layers.{i}.downsample.{{m*}}.{{t*}}")]
    return rows + [("norm.{t*}", "norm.{t*}"), ("head.{t*}", "head.{t*}")]


TORCHVISION2D = KeyTable.of("torchvision", _torchvision2d_rows())

_HF_BLOCK = "swin.encoder.layers.{i}.blocks.{j}"
HUGGINGFACE = KeyTable.of("huggingface", [
    ("swin.embeddings.patch_embeddings.projection.{t*}", "patch_embed.proj.{t*}"),
    ("swin.embeddings.norm.{t*}", "patch_embed.norm.{t*}"),
    (f"{_HF_BLOCK}.layernorm_before.{{t*}}", "layers.{i}.blocks.{j}.norm1.{t*}"),
    (f"{_HF_BLOCK}.layernorm_after.{{t*}}", "layers.{i}.blocks.{j}.norm2.{t*}"),
    (f"{_HF_BLOCK}.attention.relative_position_bias.relative_position_bias_table",
     "layers.{i}.blocks.{j}.attn.relative_position_bias_table"),
    (f"{_HF_BLOCK}.attention.self.relative_position_bias_table",  # transformers < 5
     "layers.{i}.blocks.{j}.attn.relative_position_bias_table"),
    (f"{_HF_BLOCK}.attention.qkv.{{t*}}", "layers.{i}.blocks.{j}.attn.qkv.{t*}"),  # merged by merge_hf_qkv
    (f"{_HF_BLOCK}.attention.o_proj.{{t*}}", "layers.{i}.blocks.{j}.attn.proj.{t*}"),
    (f"{_HF_BLOCK}.attention.output.dense.{{t*}}", "layers.{i}.blocks.{j}.attn.proj.{t*}"),
    (f"{_HF_BLOCK}.mlp.fc1.{{t*}}", "layers.{i}.blocks.{j}.mlp.fc1.{t*}"),
    (f"{_HF_BLOCK}.mlp.fc2.{{t*}}", "layers.{i}.blocks.{j}.mlp.fc2.{t*}"),
    (f"{_HF_BLOCK}.intermediate.dense.{{t*}}", "layers.{i}.blocks.{j}.mlp.fc1.{t*}"),
    (f"{_HF_BLOCK}.output.dense.{{t*}}", "layers.{i}.blocks.{j}.mlp.fc2.{t*}"),
    *_BUFFERS,
    ("swin.encoder.layers.{i}.downsample.{m*}.{t*}", "layers.{i}.downsample.{m*}.{t*}"),
    ("swin.layernorm.{t*}", "norm.{t*}"),
    ("classifier.{t*}", "head.{t*}"),
])

_MMP_BLOCK = "backbone.stages.{i}.blocks.{j}"
MMPRETRAIN = KeyTable.of("mmpretrain", [
    ("backbone.patch_embed.projection.{t*}", "patch_embed.proj.{t*}"),
    ("backbone.patch_embed.norm.{t*}", "patch_embed.norm.{t*}"),
    *_BUFFERS,
    (f"{_MMP_BLOCK}.attn.w_msa.{{k**}}", "layers.{i}.blocks.{j}.attn.{k**}"),
    (f"{_MMP_BLOCK}.ffn.layers.0.0.{{t*}}", "layers.{i}.blocks.{j}.mlp.fc1.{t*}"),
    (f"{_MMP_BLOCK}.ffn.layers.1.{{t*}}", "layers.{i}.blocks.{j}.mlp.fc2.{t*}"),
    (f"{_MMP_BLOCK}.{{m*}}.{{t*}}", "layers.{i}.blocks.{j}.{m*}.{t*}"),
    ("backbone.stages.{i}.downsample.{m*}.{t*}", "layers.{i}.downsample.{m*}.{t*}"),
    ("backbone.norm{n}.{t*}", "norm.{t*}"),
    ("head.fc.{t*}", "head.{t*}"),
])

SOURCES_2D = {t.name: t for t in (MICROSOFT, TIMM, TORCHVISION2D, HUGGINGFACE, MMPRETRAIN)}


def merge_hf_qkv(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face keeps query, key and value as three Linears; Swin's ``qkv`` is their rows
    stacked [q; k; v] (the order its forward splits them in)."""
    out: dict[str, torch.Tensor] = {}
    names = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "self.query": "q", "self.key": "k", "self.value": "v"}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        hit = next(((k, n) for k, n in names.items() if f".attention.{k}." in key), None)
        if hit is None:
            out[key] = t
            continue
        head, tail = key.split(f".attention.{hit[0]}.")
        parts.setdefault(f"{head}.attention.qkv.{tail}", {})[hit[1]] = t
    for key, qkv in parts.items():
        if set(qkv) != {"q", "k", "v"}:
            raise Inflate3dError(f"{key}: query, key and value are not all present")
        out[key] = cat_rows([qkv["q"], qkv["k"], qkv["v"]])
    return out




def unfold_to_merge_order(t: torch.Tensor) -> torch.Tensor:
    """mmpretrain's PatchMerging gathers the 2x2 neighbours with ``nn.Unfold``: feature index
    c*4 + p, p over (0,0), (0,1), (1,0), (1,1) (row, column). Swin's own order is p*C + c with p
    over (0,0), (1,0), (0,1), (1,1). Reorders the last dim of a reduction weight or a norm
    vector from the first to the second (the inverse of mmpretrain's converter step)."""
    from ..io.structure import TensorMeta

    *lead, n = t.shape
    c = n // 4
    if isinstance(t, TensorMeta):  # a shape record: the reorder keeps the shape (a reshape checks it)
        if n % 4:
            raise TypeError("a merge feature count that is not a multiple of 4")  # the tensors decide
        return TensorMeta(tuple(t.shape), t.dtype)
    x = t.reshape(*lead, c, 4).transpose(-1, -2)  # (..., p_unfold, c)
    return x[..., [0, 2, 1, 3], :].reshape(*lead, n).contiguous()


def to_canonical(tensors: Mapping[str, torch.Tensor], scheme: str, origin: str) -> dict[str, torch.Tensor]:
    """2D tensors in ``scheme`` -> canonical (Microsoft) names, buffers dropped."""
    if scheme == "huggingface":
        if not any(k.startswith("swin.") for k in tensors):  # a bare SwinModel
            tensors = {f"swin.{k}": v for k, v in tensors.items()}
        tensors = merge_hf_qkv(tensors)
    table = SOURCES_2D[scheme]
    out, unmapped = {}, []
    for key, t in tensors.items():
        ok, new = table.to_native(key)
        if not ok:
            unmapped.append(key)
        elif new is not None:
            if scheme == "mmpretrain" and ".downsample." in new:
                t = unfold_to_merge_order(t)
            out[new] = t
    if unmapped:
        raise Inflate3dError(f"{origin}: {len(unmapped)} keys are not {scheme} Swin names: {', '.join(unmapped[:4])}")
    return out


def from_canonical(tensors: Mapping[str, torch.Tensor], table: KeyTable) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in tensors.items():
        ok, new = table.from_native(key)
        if not ok or new is None:
            raise KeyError(f"{key} has no {table.name} name")
        out[new] = t
    return out


# --- 3D: the native (mmaction2 recognizer) names against torchvision's swin3d_* ----------------

def _torchvision3d_rows(stages: int) -> list[tuple[str | None, str | None]]:
    rows: list[tuple[str | None, str | None]] = [("patch_embed.{k**}", "backbone.patch_embed.{k**}")]
    for i in range(stages):
        s, b = f"features.{2 * i}.{{j}}", f"backbone.layers.{i}.blocks.{{j}}"
        rows += [(f"{s}.mlp.0.{{t*}}", f"{b}.mlp.fc1.{{t*}}"), (f"{s}.mlp.3.{{t*}}", f"{b}.mlp.fc2.{{t*}}"),
                 (f"{s}.{{k**}}", f"{b}.{{k**}}"),
                 (f"features.{2 * i + 1}.{{m*}}.{{t*}}", f"backbone.layers.{i}.downsample.{{m*}}.{{t*}}")]
    return rows + [("norm.{t*}", f"backbone.norm{stages - 1}.{{t*}}"), ("head.{t*}", "cls_head.fc_cls.{t*}")]


def torchvision3d_table(stages: int) -> KeyTable:
    return KeyTable.of("torchvision", _torchvision3d_rows(stages))


def stages_of(keys: Iterable[str]) -> int:
    """Number of stages, from ``layers.i`` (native) or ``features.2i`` (torchvision) names."""
    import re

    n = 0
    for k in keys:
        if m := re.search(r"(?:^|\.)layers\.(\d+)\.blocks\.", k):
            n = max(n, int(m[1]) + 1)
        elif m := re.match(r"features\.(\d+)\.\d+\.attn\.", k):
            n = max(n, int(m[1]) // 2 + 1)
    return n
