"""The state-dict shapes of ``build_model(arch, num_classes=..., **overrides)`` for a TimeSformer or
ViViT, computed from the settings (torch-free: ``inspect`` matches a checkpoint without building a
network). A transformer's shapes follow from a few numbers, and a checkpoint's settings are read off
its own shapes, so no table of named configurations could hold them.

Only settings whose network certainly builds are computed; anything else (an unknown setting, a
value of another type, heads that do not divide the width) gives ``None``, and the caller builds
the network on the meta device, which gives the authoritative answer or error. A test compares
these shapes, keys and order with meta builds over a grid of settings.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TIMESFORMER = frozenset({"num_frames", "img_size", "patch_size", "embed_dims", "num_heads", "num_transformer_layers",
                         "feedforward_channels", "in_channels", "attention_type", "norm_eps"})
VIVIT = frozenset({"num_frames", "image_size", "tubelet_size", "hidden_size", "num_hidden_layers",
                   "num_attention_heads", "intermediate_size", "layer_norm_eps", "in_channels", "hidden_act"})
ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")  # networks.ATTENTION_TYPES
HIDDEN_ACTS = ("gelu", "gelu_fast", "gelu_pytorch_tanh")

Shapes = dict[str, tuple[int, ...]]


def _count(v: Any) -> bool:
    return type(v) is int and v > 0


def state_dict_shapes(arch, num_classes: int | None, overrides: Mapping[str, Any]) -> Shapes | None:
    """{key: shape} in state-dict order, or None where only a build can tell."""
    cfg = {**dict(arch.backbone), **overrides}
    if num_classes is not None and not _count(num_classes):
        return None
    if arch.family == "timesformer":
        out = _timesformer(cfg)
        dims = cfg.get("embed_dims")
    elif arch.family == "vivit":
        out = _vivit(cfg)
        dims = cfg.get("hidden_size")
    else:
        return None
    if out is None:
        return None
    if num_classes is not None:  # networks.timesformer_head: an I3DHead with no pool
        out.update({"cls_head.fc_cls.weight": (num_classes, dims), "cls_head.fc_cls.bias": (num_classes,)})
    return out


def _eps(v: Any) -> bool:
    return type(v) in (int, float)


def _attention(p: str, d: int) -> Shapes:
    """``nn.MultiheadAttention(d, heads)``: packed q, k, v."""
    return {f"{p}.in_proj_weight": (3 * d, d), f"{p}.in_proj_bias": (3 * d,),
            f"{p}.out_proj.weight": (d, d), f"{p}.out_proj.bias": (d,)}


def _linear(p: str, n_in: int, n_out: int) -> Shapes:
    return {f"{p}.weight": (n_out, n_in), f"{p}.bias": (n_out,)}


def _norm(p: str, d: int) -> Shapes:
    return {f"{p}.weight": (d,), f"{p}.bias": (d,)}


def _timesformer(cfg: dict) -> Shapes | None:
    if set(cfg) - TIMESFORMER:
        return None
    frames, size, patch = cfg.get("num_frames", 8), cfg.get("img_size", 224), cfg.get("patch_size", 16)
    d, heads, layers = cfg.get("embed_dims", 768), cfg.get("num_heads", 12), cfg.get("num_transformer_layers", 12)
    hidden, channels = cfg.get("feedforward_channels"), cfg.get("in_channels", 3)
    attention, eps = cfg.get("attention_type", "divided_space_time"), cfg.get("norm_eps", 1e-6)
    hidden = 4 * d if hidden is None and _count(d) else hidden
    if not all(_count(v) for v in (frames, size, patch, d, heads, layers, hidden, channels)) or d % heads \
            or attention not in ATTENTION_TYPES or not _eps(eps):
        return None
    b = "backbone"
    out: Shapes = {f"{b}.cls_token": (1, 1, d), f"{b}.pos_embed": (1, (size // patch) ** 2 + 1, d)}
    if attention != "space_only":
        out[f"{b}.time_embed"] = (1, frames, d)
    out.update({f"{b}.patch_embed.projection.weight": (d, channels, patch, patch),
                f"{b}.patch_embed.projection.bias": (d,), **_norm(f"{b}.norm", d)})
    for i in range(layers):
        p = f"{b}.transformer_layers.layers.{i}"
        ffn = {**_linear(f"{p}.ffns.0.layers.0.0", d, hidden), **_linear(f"{p}.ffns.0.layers.1", hidden, d)}
        if attention == "divided_space_time":
            out.update({**_norm(f"{p}.attentions.0.norm", d), **_attention(f"{p}.attentions.0.attn", d),
                        **_linear(f"{p}.attentions.0.temporal_fc", d, d),
                        **_norm(f"{p}.attentions.1.norm", d), **_attention(f"{p}.attentions.1.attn", d),
                        **ffn, **_norm(f"{p}.ffns.0.norm", d)})
        else:
            out.update({**_attention(f"{p}.attentions.0.attn", d), **ffn,
                        **_norm(f"{p}.norms.0", d), **_norm(f"{p}.norms.1", d)})
    return out


def _vivit(cfg: dict) -> Shapes | None:
    if set(cfg) - VIVIT:
        return None
    frames, size, tubelet = cfg.get("num_frames", 32), cfg.get("image_size", 224), cfg.get("tubelet_size", (2, 16, 16))
    d, layers, heads = cfg.get("hidden_size", 768), cfg.get("num_hidden_layers", 12), cfg.get("num_attention_heads", 12)
    hidden, eps = cfg.get("intermediate_size", 3072), cfg.get("layer_norm_eps", 1e-6)
    channels, act = cfg.get("in_channels", 3), cfg.get("hidden_act", "gelu")
    if not isinstance(tubelet, (tuple, list)) or len(tubelet) != 3 or not all(_count(v) for v in tubelet):
        return None
    tt, ph, pw = tubelet
    if not all(_count(v) for v in (frames, size, d, layers, heads, hidden, channels)) or not _eps(eps) \
            or act not in HIDDEN_ACTS:
        return None
    tokens = (frames // tt) * (size // ph) * (size // pw)
    b = "backbone"
    out: Shapes = {f"{b}.embeddings.cls_token": (1, 1, d), f"{b}.embeddings.position_embeddings": (1, tokens + 1, d),
                   f"{b}.embeddings.patch_embeddings.projection.weight": (d, channels, tt, ph, pw),
                   f"{b}.embeddings.patch_embeddings.projection.bias": (d,)}
    for i in range(layers):
        p = f"{b}.encoder.layer.{i}"
        out.update({**_linear(f"{p}.attention.attention.query", d, d), **_linear(f"{p}.attention.attention.key", d, d),
                    **_linear(f"{p}.attention.attention.value", d, d), **_linear(f"{p}.attention.output.dense", d, d),
                    **_linear(f"{p}.intermediate.dense", d, hidden), **_linear(f"{p}.output.dense", hidden, d),
                    **_norm(f"{p}.layernorm_before", d), **_norm(f"{p}.layernorm_after", d)})
    out.update(_norm(f"{b}.layernorm", d))
    return out
