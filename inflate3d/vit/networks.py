"""TimeSformer with mmaction2's module names (``TimeSformer`` + ``TimeSformerHead``), and ViViT
with Hugging Face ``VivitModel``'s on-disk names (mmaction2 has no ViViT), as ``Recognizer3D``s.

The maths is mmaction2's / transformers': divided space-time attention updates the class token only
in the spatial step (the per-frame class-token outputs are averaged), the temporal step ends in
``temporal_fc``; joint and space-only layers are pre-norm blocks (``norms.0``, ``norms.1``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..slowfast.heads import I3DHead
from ..slowfast.recognizer import Recognizer3D

ATTENTION_TYPES = ("divided_space_time", "joint_space_time", "space_only")


class FFN(nn.Module):
    """mmcv's FFN: ``layers.0.0`` (fc1), GELU, ``layers.1`` (fc2); with ``norm`` when pre-normed."""

    def __init__(self, dims: int, hidden: int, *, eps: float | None = None) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dims, hidden), nn.GELU(), nn.Dropout(0.0)),
                                    nn.Linear(hidden, dims), nn.Dropout(0.0))
        if eps is not None:
            self.norm = nn.LayerNorm(dims, eps=eps)

    def forward(self, x: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        """``identity + fc2(gelu(fc1(x)))``; pre-normed when it has a norm (identity is then x)."""
        if hasattr(self, "norm"):
            return x + self.layers(self.norm(x))
        return (x if identity is None else identity) + self.layers(x)


def _attend(attn: nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    return attn(x, x, x, need_weights=False)[0]


class DividedTemporalAttentionWithNorm(nn.Module):
    def __init__(self, dims: int, heads: int, frames: int, eps: float) -> None:
        super().__init__()
        self.num_frames = frames
        self.norm = nn.LayerNorm(dims, eps=eps)
        self.attn = nn.MultiheadAttention(dims, heads, batch_first=True)
        self.temporal_fc = nn.Linear(dims, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, tokens = x[:, :1], x[:, 1:]  # tokens patch-major: (p t)
        b, pt, m = tokens.shape
        t = self.num_frames
        res = _attend(self.attn, self.norm(tokens.reshape(b * (pt // t), t, m)))
        res = self.temporal_fc(res).reshape(b, pt, m)
        return torch.cat((cls, tokens + res), 1)


class DividedSpatialAttentionWithNorm(nn.Module):
    def __init__(self, dims: int, heads: int, frames: int, eps: float) -> None:
        super().__init__()
        self.num_frames = frames
        self.norm = nn.LayerNorm(dims, eps=eps)
        self.attn = nn.MultiheadAttention(dims, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, tokens = x[:, :1], x[:, 1:]
        b, pt, m = tokens.shape
        t = self.num_frames
        p = pt // t
        frames = tokens.reshape(b, p, t, m).transpose(1, 2).reshape(b * t, p, m)
        frames = torch.cat((cls.repeat_interleave(t, 0), frames), 1)
        res = _attend(self.attn, self.norm(frames))
        res_cls = res[:, 0].reshape(b, t, m).mean(1, keepdim=True)
        res_tokens = res[:, 1:].reshape(b, t, p, m).transpose(1, 2).reshape(b, pt, m)
        return x + torch.cat((res_cls, res_tokens), 1)


class MultiheadAttention(nn.Module):
    """mmcv's wrapper: the torch module sits at ``attn``."""

    def __init__(self, dims: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dims, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _attend(self.attn, x)


class DividedLayer(nn.Module):
    def __init__(self, dims: int, heads: int, frames: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([DividedTemporalAttentionWithNorm(dims, heads, frames, eps),
                                         DividedSpatialAttentionWithNorm(dims, heads, frames, eps)])
        self.ffns = nn.ModuleList([FFN(dims, hidden, eps=eps)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffns[0](self.attentions[1](self.attentions[0](x)))


class PreNormLayer(nn.Module):
    """mmcv's BaseTransformerLayer with operation_order ('norm', 'self_attn', 'norm', 'ffn')."""

    def __init__(self, dims: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([MultiheadAttention(dims, heads)])
        self.ffns = nn.ModuleList([FFN(dims, hidden)])
        self.norms = nn.ModuleList([nn.LayerNorm(dims, eps=eps), nn.LayerNorm(dims, eps=eps)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attentions[0](self.norms[0](x))
        return self.ffns[0](self.norms[1](x), identity=x)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_channels: int, dims: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, dims, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B*T, P, D)
        b, c, t, h, w = x.shape
        return self.projection(x.transpose(1, 2).reshape(b * t, c, h, w)).flatten(2).transpose(1, 2)


class _Layers(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class TimeSformer(nn.Module):
    """mmaction2's ``TimeSformer`` backbone: (B, C, T, H, W) -> the normalised class token (B, D)."""

    def __init__(self, *, num_frames: int = 8, img_size: int = 224, patch_size: int = 16,
                 embed_dims: int = 768, num_heads: int = 12, num_transformer_layers: int = 12,
                 feedforward_channels: int | None = None, in_channels: int = 3,
                 attention_type: str = "divided_space_time", norm_eps: float = 1e-6) -> None:
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")
        self.num_frames, self.attention_type, self.embed_dims = num_frames, attention_type, embed_dims
        self.img_size, self.patch_size = img_size, patch_size
        hidden = feedforward_channels or 4 * embed_dims
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dims)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img_size // patch_size) ** 2 + 1, embed_dims))
        if attention_type != "space_only":
            self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dims))
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps)
        layers = [DividedLayer(embed_dims, num_heads, num_frames, hidden, norm_eps)
                  if attention_type == "divided_space_time" else
                  PreNormLayer(embed_dims, num_heads, hidden, norm_eps) for _ in range(num_transformer_layers)]
        self.transformer_layers = _Layers(layers)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Random init (trunc-normal embeddings and linears, zero ``temporal_fc``), for a fresh net."""
        for name, p in self.named_parameters():
            if name.endswith("bias") or ".norm" in name or "norms." in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            elif "temporal_fc" in name or name == "time_embed":
                nn.init.zeros_(p)
            else:
                nn.init.trunc_normal_(p, std=0.02, generator=generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens before the first layer: (B, 1 + P*T, D) patch-major, or (B*T, 1 + P, D) space-only."""
        b = x.shape[0]
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), 1) + self.pos_embed
        if self.attention_type == "space_only":
            return x
        cls, tokens = x[:b, :1], x[:, 1:]
        bt, p, m = tokens.shape
        tokens = tokens.reshape(b, bt // b, p, m).transpose(1, 2) + self.time_embed.unsqueeze(1)
        return torch.cat((cls, tokens.reshape(b, p * (bt // b), m)), 1)

    def stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output by name (``embedding``, ``layer0``, ...), then ``cls`` (the output)."""
        out = {"embedding": self.embed(x)}
        h = out["embedding"]
        for i, layer in enumerate(self.transformer_layers.layers):
            h = out[f"layer{i}"] = layer(h)
        if self.attention_type == "space_only":
            h = h.reshape(x.shape[0], -1, *h.shape[1:]).mean(1)
        out["cls"] = self.norm(h)[:, 0]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)["cls"]


class VivitLayer(nn.Module):
    """Hugging Face's ViViT layer (pre-norm), with its on-disk names."""

    def __init__(self, dims: int, heads: int, hidden: int, eps: float, act: str = "gelu") -> None:
        super().__init__()
        self.heads = heads
        self.approximate = "none" if act == "gelu" else "tanh"  # gelu_fast / gelu_pytorch_tanh: tanh form
        self.attention = nn.Module()
        self.attention.attention = nn.Module()
        for name in ("query", "key", "value"):
            setattr(self.attention.attention, name, nn.Linear(dims, dims))
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(dims, dims)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(dims, hidden)
        self.output = nn.Module()
        self.output.dense = nn.Linear(hidden, dims)
        self.layernorm_before = nn.LayerNorm(dims, eps=eps)
        self.layernorm_after = nn.LayerNorm(dims, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention.attention
        h = self.layernorm_before(x)
        b, n, d = h.shape
        q, k, v = (getattr(a, name)(h).reshape(b, n, self.heads, -1).transpose(1, 2)
                   for name in ("query", "key", "value"))
        h = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.attention.output.dense(h)
        h = nn.functional.gelu(self.intermediate.dense(self.layernorm_after(x)), approximate=self.approximate)
        return x + self.output.dense(h)


class ViViT(nn.Module):
    """ViViT model 1 (joint space-time), as Hugging Face's ``VivitModel`` without its pooler:
    (B, C, T, H, W) -> the normalised class token (B, D). Tokens are time-major (t h w)."""

    def __init__(self, *, num_frames: int = 32, image_size: int = 224, tubelet_size=(2, 16, 16),
                 hidden_size: int = 768, num_hidden_layers: int = 12, num_attention_heads: int = 12,
                 intermediate_size: int = 3072, layer_norm_eps: float = 1e-6, in_channels: int = 3,
                 hidden_act: str = "gelu") -> None:
        super().__init__()
        if hidden_act not in ("gelu", "gelu_fast", "gelu_pytorch_tanh"):
            raise ValueError(f"hidden_act must be gelu, gelu_fast or gelu_pytorch_tanh, got {hidden_act!r}")
        tt, ph, pw = tubelet_size
        self.num_frames, self.image_size, self.tubelet_size = num_frames, image_size, tuple(tubelet_size)
        tokens = (num_frames // tt) * (image_size // ph) * (image_size // pw)
        self.embeddings = nn.Module()
        self.embeddings.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.embeddings.position_embeddings = nn.Parameter(torch.zeros(1, tokens + 1, hidden_size))
        self.embeddings.patch_embeddings = nn.Module()
        self.embeddings.patch_embeddings.projection = nn.Conv3d(in_channels, hidden_size, tubelet_size,
                                                                stride=tubelet_size)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([VivitLayer(hidden_size, num_attention_heads, intermediate_size,
                                                       layer_norm_eps, hidden_act) for _ in range(num_hidden_layers)])
        self.layernorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        for name, p in self.named_parameters():
            if name.endswith("bias") or "layernorm" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            else:
                nn.init.trunc_normal_(p, std=0.02, generator=generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        tokens = e.patch_embeddings.projection(x).flatten(2).transpose(1, 2)
        return torch.cat((e.cls_token.expand(x.shape[0], -1, -1), tokens), 1) + e.position_embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.encoder.layer:
            h = layer(h)
        return self.layernorm(h)[:, 0]


def timesformer_head(num_classes: int, in_channels: int) -> I3DHead:
    """mmaction2's ``TimeSformerHead``: ``fc_cls`` on the class token (normal init, std 0.02)."""
    return I3DHead(num_classes, in_channels, spatial_type=None, dropout_ratio=0.0, init_std=0.02)


def build(arch, *, num_classes: int | None = 400, init: bool = True, **overrides) -> Recognizer3D:
    """The builder registered for the ``timesformer`` and ``vivit`` families."""
    cfg = {**dict(arch.backbone), **overrides}
    backbone = TimeSformer(**cfg) if arch.family == "timesformer" else ViViT(**cfg)
    dims = cfg.get("embed_dims", cfg.get("hidden_size"))
    model = Recognizer3D(backbone, None if num_classes is None else timesformer_head(num_classes, dims))
    if init:
        model.init_weights()
    return model
