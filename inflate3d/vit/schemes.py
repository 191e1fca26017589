"""Two-way key tables of the video transformers against the native names.

TimeSformer's native names are mmaction2's (``backbone.transformer_layers.layers.i.attentions.0`` is
the temporal attention of a divided layer, the only attention of a joint / space-only one, so each
scheme has one table per layer kind). ViViT has no mmaction2 counterpart: its native names are
Hugging Face ``VivitModel``'s under ``backbone.``, with the head at ``cls_head.fc_cls``.

Schemes: ``huggingface`` (``TimesformerModel`` / ``VivitModel`` names; with a head
``TimesformerForVideoClassification`` / ``VivitForVideoClassification``: ``timesformer.`` / ``vivit.``
prefix and ``classifier``) and ``timesformer`` (facebookresearch/TimeSformer: ``model.blocks.i.temporal_attn``; the loader strips
the ``model.`` of its PySlowFast wrapper, so tables and safetensors outputs go without it, and
``--format pth`` puts it back inside ``{'model_state'}``).
"""
from __future__ import annotations

from ..inflate.schemes.table import KeyTable

L = "backbone.transformer_layers.layers.{i}"

_EMBED = [
    ("embeddings.cls_token",                        "backbone.cls_token"),
    ("embeddings.position_embeddings",              "backbone.pos_embed"),
    ("embeddings.time_embeddings",                  "backbone.time_embed"),
    ("embeddings.patch_embeddings.projection.{t*}", "backbone.patch_embed.projection.{t*}"),
    ("layernorm.{t*}",                              "backbone.norm.{t*}"),
    ("classifier.{t*}",                             "cls_head.fc_cls.{t*}"),
]
_HF_FFN = [
    ("encoder.layer.{i}.intermediate.dense.{t*}",   f"{L}.ffns.0.layers.0.0.{{t*}}"),
    ("encoder.layer.{i}.output.dense.{t*}",         f"{L}.ffns.0.layers.1.{{t*}}"),
]
HF_DIVIDED = KeyTable.of("huggingface", _EMBED + [
    ("encoder.layer.{i}.temporal_layernorm.{t*}",                 f"{L}.attentions.0.norm.{{t*}}"),
    ("encoder.layer.{i}.temporal_attention.attention.qkv.{t*}",   f"{L}.attentions.0.attn.in_proj_{{t*}}"),
    ("encoder.layer.{i}.temporal_attention.output.dense.{t*}",    f"{L}.attentions.0.attn.out_proj.{{t*}}"),
    ("encoder.layer.{i}.temporal_dense.{t*}",                     f"{L}.attentions.0.temporal_fc.{{t*}}"),
    ("encoder.layer.{i}.layernorm_before.{t*}",                   f"{L}.attentions.1.norm.{{t*}}"),
    ("encoder.layer.{i}.attention.attention.qkv.{t*}",            f"{L}.attentions.1.attn.in_proj_{{t*}}"),
    ("encoder.layer.{i}.attention.output.dense.{t*}",             f"{L}.attentions.1.attn.out_proj.{{t*}}"),
    ("encoder.layer.{i}.layernorm_after.{t*}",                    f"{L}.ffns.0.norm.{{t*}}"),
] + _HF_FFN)
HF_PLAIN = KeyTable.of("huggingface", _EMBED + [
    ("encoder.layer.{i}.layernorm_before.{t*}",                   f"{L}.norms.0.{{t*}}"),
    ("encoder.layer.{i}.attention.attention.qkv.{t*}",            f"{L}.attentions.0.attn.in_proj_{{t*}}"),
    ("encoder.layer.{i}.attention.output.dense.{t*}",             f"{L}.attentions.0.attn.out_proj.{{t*}}"),
    ("encoder.layer.{i}.layernorm_after.{t*}",                    f"{L}.norms.1.{{t*}}"),
] + _HF_FFN)

_ORIG_EMBED = [
    ("cls_token",            "backbone.cls_token"),
    ("pos_embed",            "backbone.pos_embed"),
    ("time_embed",           "backbone.time_embed"),
    ("patch_embed.proj.{t*}", "backbone.patch_embed.projection.{t*}"),
    ("norm.{t*}",            "backbone.norm.{t*}"),
    ("head.{t*}",            "cls_head.fc_cls.{t*}"),
    ("blocks.{i}.mlp.fc1.{t*}", f"{L}.ffns.0.layers.0.0.{{t*}}"),
    ("blocks.{i}.mlp.fc2.{t*}", f"{L}.ffns.0.layers.1.{{t*}}"),
]
ORIGINAL_DIVIDED = KeyTable.of("timesformer", _ORIG_EMBED + [
    ("blocks.{i}.temporal_norm1.{t*}",      f"{L}.attentions.0.norm.{{t*}}"),
    ("blocks.{i}.temporal_attn.qkv.{t*}",   f"{L}.attentions.0.attn.in_proj_{{t*}}"),
    ("blocks.{i}.temporal_attn.proj.{t*}",  f"{L}.attentions.0.attn.out_proj.{{t*}}"),
    ("blocks.{i}.temporal_fc.{t*}",         f"{L}.attentions.0.temporal_fc.{{t*}}"),
    ("blocks.{i}.norm1.{t*}",               f"{L}.attentions.1.norm.{{t*}}"),
    ("blocks.{i}.attn.qkv.{t*}",            f"{L}.attentions.1.attn.in_proj_{{t*}}"),
    ("blocks.{i}.attn.proj.{t*}",           f"{L}.attentions.1.attn.out_proj.{{t*}}"),
    ("blocks.{i}.norm2.{t*}",               f"{L}.ffns.0.norm.{{t*}}"),
])
ORIGINAL_PLAIN = KeyTable.of("timesformer", _ORIG_EMBED + [
    ("blocks.{i}.norm1.{t*}",               f"{L}.norms.0.{{t*}}"),
    ("blocks.{i}.attn.qkv.{t*}",            f"{L}.attentions.0.attn.in_proj_{{t*}}"),
    ("blocks.{i}.attn.proj.{t*}",           f"{L}.attentions.0.attn.out_proj.{{t*}}"),
    ("blocks.{i}.norm2.{t*}",               f"{L}.norms.1.{{t*}}"),
])

VIVIT_HF = KeyTable.of("huggingface", [
    ("classifier.{t*}",            "cls_head.fc_cls.{t*}"),
    ("pooler.dense.{t*}",          None),  # VivitModel's pooler: nothing in a 2D ViT or the native net
    ("{k**}",                      "backbone.{k**}"),
])

# transformers >= 5 names ViT's and ViViT's modules differently in memory (``model.state_dict()``)
# than ``save_pretrained`` writes them: live name -> saved name. Read, never written.
HF_LIVE = KeyTable.of("huggingface-live", [
    ("layers.{i}.layernorm_before.{t*}",      "encoder.layer.{i}.layernorm_before.{t*}"),
    ("layers.{i}.attention.{q=q_proj|k_proj|v_proj}.{t*}",
     "encoder.layer.{i}.attention.attention.{q=query|key|value}.{t*}"),
    ("layers.{i}.attention.o_proj.{t*}",      "encoder.layer.{i}.attention.output.dense.{t*}"),
    ("layers.{i}.layernorm_after.{t*}",       "encoder.layer.{i}.layernorm_after.{t*}"),
    ("layers.{i}.mlp.fc1.{t*}",               "encoder.layer.{i}.intermediate.dense.{t*}"),
    ("layers.{i}.mlp.fc2.{t*}",               "encoder.layer.{i}.output.dense.{t*}"),
])


def saved_name(key: str) -> str:
    """A Hugging Face key as ``save_pretrained`` writes it (a model prefix such as ``vit.`` kept);
    any other key as it is."""
    prefix = next((p for p in ("vit.", "vivit.") if key.startswith(p)), "")
    ok, saved = HF_LIVE.to_native(key[len(prefix):])
    return prefix + saved if ok and saved else key


HF_PREFIX = {"timesformer": "timesformer.", "vivit": "vivit."}


def table(family: str, scheme: str, divided: bool) -> KeyTable | None:
    if family == "vivit":
        return VIVIT_HF if scheme == "huggingface" else None
    if scheme == "huggingface":
        return HF_DIVIDED if divided else HF_PLAIN
    if scheme == "timesformer":
        return ORIGINAL_DIVIDED if divided else ORIGINAL_PLAIN
    return None


def to_native_key(family: str, scheme: str, key: str, divided: bool) -> tuple[bool, str | None]:
    """(matched, native key or None when dropped on purpose)."""
    if scheme == "mmaction2":
        return True, key if key.startswith(("backbone.", "cls_head.")) else f"backbone.{key}"
    if scheme == "huggingface":
        prefix = HF_PREFIX[family]
        key = key[len(prefix):] if key.startswith(prefix) else key
        key = saved_name(key)
    elif scheme == "timesformer" and key.startswith("model."):
        key = key[len("model."):]  # PySlowFast's wrapper (the loader strips it from whole files)
    tbl = table(family, scheme, divided)
    return (False, None) if tbl is None else tbl.to_native(key)


def from_native_key(family: str, scheme: str, key: str, divided: bool, with_head: bool) -> tuple[bool, str | None]:
    if scheme == "mmaction2":
        return True, key
    tbl = table(family, scheme, divided)
    if tbl is None:
        return False, None
    ok, out = tbl.from_native(key)
    if ok and out and scheme == "huggingface" and with_head and not out.startswith("classifier."):
        out = HF_PREFIX[family] + out
    return ok, out
