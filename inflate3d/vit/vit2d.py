"""2D ViT sources in one canonical naming (timm's), whichever codebase saved them.

timm / DeiT (``blocks.i.attn.qkv``), torchvision ``vit_b_16`` & co. (``encoder.layers.encoder_layer_i``,
``in_proj_weight``) and Hugging Face ``ViTModel`` / ``ViTForImageClassification`` (separate
query / key / value) are renamed by two-way tables; Hugging Face's q, k, v are concatenated in that
order, which is exactly timm's ``qkv`` (and torch's ``in_proj_weight``). The same weights therefore
give the same canonical bytes in any format. ``ViT2d`` is the reference network the proofs run.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import Inflate3dError
from ..inflate.schemes.table import KeyTable
from ..io.checkpoint import metadata_json
from ..io.structure import cat_rows
from .detect import detect_format

if TYPE_CHECKING:  # torch-free to import (``inspect`` describes 2D ViTs from shape records)
    import torch


def __getattr__(name: str):
    """``ViT2d`` (the reference network, in ``reference``) lives here too, imported on first use."""
    if name == "ViT2d":
        from .reference import ViT2d

        return ViT2d
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


TIMM = KeyTable.of("timm", [(k, k) for k in (
    "cls_token", "pos_embed", "patch_embed.proj.{t*}", "blocks.{i}.norm1.{t*}", "blocks.{i}.attn.qkv.{t*}",
    "blocks.{i}.attn.proj.{t*}", "blocks.{i}.norm2.{t*}", "blocks.{i}.mlp.fc1.{t*}", "blocks.{i}.mlp.fc2.{t*}",
    "norm.{t*}", "head.{t*}")])

TORCHVISION = KeyTable.of("torchvision", [
    ("class_token",                                          "cls_token"),
    ("encoder.pos_embedding",                                "pos_embed"),
    ("conv_proj.{t*}",                                       "patch_embed.proj.{t*}"),
    ("encoder.layers.encoder_layer_{i}.ln_1.{t*}",           "blocks.{i}.norm1.{t*}"),
    ("encoder.layers.encoder_layer_{i}.self_attention.in_proj_weight", "blocks.{i}.attn.qkv.weight"),
    ("encoder.layers.encoder_layer_{i}.self_attention.in_proj_bias",   "blocks.{i}.attn.qkv.bias"),
    ("encoder.layers.encoder_layer_{i}.self_attention.out_proj.{t*}",  "blocks.{i}.attn.proj.{t*}"),
    ("encoder.layers.encoder_layer_{i}.ln_2.{t*}",           "blocks.{i}.norm2.{t*}"),
    ("encoder.layers.encoder_layer_{i}.mlp.0.{t*}",          "blocks.{i}.mlp.fc1.{t*}"),
    ("encoder.layers.encoder_layer_{i}.mlp.3.{t*}",          "blocks.{i}.mlp.fc2.{t*}"),
    ("encoder.layers.encoder_layer_{i}.mlp.linear_1.{t*}",   "blocks.{i}.mlp.fc1.{t*}"),
    ("encoder.layers.encoder_layer_{i}.mlp.linear_2.{t*}",   "blocks.{i}.mlp.fc2.{t*}"),
    ("encoder.ln.{t*}",                                      "norm.{t*}"),
    ("heads.head.{t*}",                                      "head.{t*}"),
])

# Hugging Face ViT as saved on disk (transformers 5's in-memory names are read as these first:
# ``schemes.saved_name``); q / k / v go to provisional names and are fused afterwards.
HUGGINGFACE = KeyTable.of("huggingface-vit", [
    ("embeddings.cls_token",                                 "cls_token"),
    ("embeddings.position_embeddings",                       "pos_embed"),
    ("embeddings.patch_embeddings.projection.{t*}",          "patch_embed.proj.{t*}"),
    ("encoder.layer.{i}.layernorm_before.{t*}",              "blocks.{i}.norm1.{t*}"),
    ("encoder.layer.{i}.attention.attention.{q=query|key|value}.{t*}", "blocks.{i}.attn.{q=q|k|v}.{t*}"),
    ("encoder.layer.{i}.attention.output.dense.{t*}",        "blocks.{i}.attn.proj.{t*}"),
    ("encoder.layer.{i}.layernorm_after.{t*}",               "blocks.{i}.norm2.{t*}"),
    ("encoder.layer.{i}.intermediate.dense.{t*}",            "blocks.{i}.mlp.fc1.{t*}"),
    ("encoder.layer.{i}.output.dense.{t*}",                  "blocks.{i}.mlp.fc2.{t*}"),
    ("layernorm.{t*}",                                       "norm.{t*}"),
    ("classifier.{t*}",                                      "head.{t*}"),
    ("pooler.dense.{t*}",                                    None),
])

FORMATS = {"timm": TIMM, "torchvision": TORCHVISION, "huggingface": HUGGINGFACE}
# Facts of each codebase's ViT code that its weights do not carry.
LAYER_NORM_EPS = {"timm": 1e-6, "torchvision": 1e-6, "huggingface": 1e-12}  # HF ViTConfig's default
HEAD_DIM = 64  # every published ViT (Ti/S/B/L/H) has 64-dimensional heads


@dataclass
class ViT2dInfo:
    format: str
    embed_dims: int
    depth: int
    patch_size: int
    grid: int
    hidden: int
    qkv_bias: bool
    num_classes: int | None
    num_heads: int
    layer_norm_eps: float
    hidden_act: str
    notes: list[str] = field(default_factory=list)

    @property
    def img_size(self) -> int:
        return self.grid * self.patch_size

    @property
    def label(self) -> str:
        return f"ViT ({self.embed_dims} wide, {self.depth} blocks, patch {self.patch_size}, {self.img_size}px)"


def canonical(tensors: Mapping[str, torch.Tensor], origin: str) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """(timm-named tensors, source format, notes). Every key must be known; none is dropped silently."""
    from ..inflate.convert import _rename

    from .schemes import saved_name

    tensors = {saved_name(k): v for k, v in tensors.items()}
    if any(k.startswith("vit.") for k in tensors):  # ViTForImageClassification
        tensors = {k[4:] if k.startswith("vit.") else k: v for k, v in tensors.items()}
    fmt = detect_format(tensors)
    if fmt is None:
        raise Inflate3dError(f"{origin}: not a 2D ViT from timm, torchvision or Hugging Face "
                             f"(e.g. {', '.join(list(tensors)[:3])}); give a ViT checkpoint")
    out, _, dropped = _rename(tensors, FORMATS[fmt].to_native, f"{fmt} ViT -> canonical", origin)
    notes = [f"left out {', '.join(dropped)} (Hugging Face's pooler: no video network uses it)"] if dropped else []
    for i in range(_depth(out)):
        for t in ("weight", "bias"):
            parts = [out.pop(f"blocks.{i}.attn.{n}.{t}", None) for n in "qkv"]
            if all(p is not None for p in parts):
                out[f"blocks.{i}.attn.qkv.{t}"] = cat_rows(parts)
            elif any(p is not None for p in parts):
                raise Inflate3dError(f"{origin}: block {i} has some of query/key/value {t}s but not all")
    return dict(sorted(out.items(), key=lambda kv: _order(kv[0]))), fmt, notes




_ORDER = ["cls_token", "pos_embed", "patch_embed.proj", "norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1",
          "mlp.fc2", "norm.", "head."]


def _order(key: str) -> tuple:
    m = re.match(r"blocks\.(\d+)\.", key)
    block = int(m[1]) if m else (-1 if not key.startswith(("norm.", "head.")) else 1 << 20)
    rank = next((i for i, p in enumerate(_ORDER) if p in key), len(_ORDER))
    return block, rank, key


def _depth(canon: Mapping[str, object]) -> int:
    return len({int(m[1]) for k in canon if (m := re.match(r"blocks\.(\d+)\.", k))})


def describe(canon: Mapping[str, torch.Tensor], fmt: str, origin: str, record: Mapping[str, str] | None = None,
             notes: list[str] | None = None) -> ViT2dInfo:
    """The ViT's geometry from its shapes; heads, LayerNorm eps and activation from its record
    (a Hugging Face config.json or inflate3d metadata) or, said in a note, from its codebase."""
    record = dict(record or {})
    hf = metadata_json(record, "hf_config", origin) or {}
    notes = list(notes or [])
    needed = ["cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"]
    missing = [k for k in needed if k not in canon]
    if missing:
        raise Inflate3dError(f"{origin}: not a complete ViT: {', '.join(missing)} missing")
    dims = int(canon["cls_token"].shape[-1])
    patch = int(canon["patch_embed.proj.weight"].shape[-1])
    n = int(canon["pos_embed"].shape[1]) - 1
    grid = math.isqrt(n)
    if grid * grid != n:
        raise Inflate3dError(f"{origin}: {n} position embeddings (besides the class token) are not a square grid")
    heads = given = hf.get("num_attention_heads") or record.get("num_heads")
    if heads:
        heads = _count(heads)  # the file's (config.json's, or its metadata's text): "x" was an internal error
        if heads <= 0 or dims % heads:
            raise Inflate3dError(f"{origin}: {str(given)[:40]!r} attention heads cannot split the width {dims}; "
                                 "fix num_attention_heads in config.json (or the metadata num_heads)")
    elif dims % HEAD_DIM == 0:
        heads = dims // HEAD_DIM
        notes.append(f"the number of attention heads is not stored in the weights: assumed {heads} "
                     f"({HEAD_DIM}-wide heads, as every published ViT); a Hugging Face folder's config.json "
                     "or a safetensors metadata entry num_heads overrides it")
    else:
        raise Inflate3dError(f"{origin}: the number of attention heads is not stored in the weights and "
                             f"{dims} is not a multiple of {HEAD_DIM}; save the ViT as a Hugging Face folder "
                             "(config.json) or as safetensors with metadata num_heads")
    eps = hf.get("layer_norm_eps") or record.get("layer_norm_eps")
    if eps is None:
        eps = LAYER_NORM_EPS[fmt]
        if fmt == "huggingface":
            notes.append("LayerNorm eps not recorded: 1e-12, Hugging Face ViTConfig's default")
    try:
        eps = float(eps)
    except (TypeError, ValueError, OverflowError):
        raise Inflate3dError(f"{origin}: LayerNorm eps {str(eps)[:40]!r} is not a number; fix layer_norm_eps in "
                             "config.json (or the metadata)") from None
    act = hf.get("hidden_act") or record.get("hidden_act") or "gelu"  # timm, torchvision: exact nn.GELU
    if act != "gelu":
        raise Inflate3dError(f"{origin}: hidden_act {act!r}; only exact GELU ViTs are supported")
    head = canon.get("head.weight")
    return ViT2dInfo(fmt, dims, _depth(canon), patch, grid, int(canon["blocks.0.mlp.fc1.weight"].shape[0]),
                     "blocks.0.attn.qkv.bias" in canon, None if head is None else int(head.shape[0]),
                     heads, eps, act, notes)


def _count(value) -> int:
    """A count the file gives (an int in config.json, text in safetensors metadata), or 0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else 0
    except ValueError:  # not a number, or 5,000 digits
        return 0
