"""A reference 2D ViT for the proofs (timm's ``VisionTransformer`` maths on canonical tensors).
Apart from ``vit2d`` (which re-exports it) so that reading a 2D ViT's names and shapes needs no torch."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .vit2d import ViT2dInfo


class ViT2d(nn.Module):
    """timm's VisionTransformer (class token, pre-norm blocks, exact GELU), for the proofs.
    ``stages`` returns the tokens after the embedding and after every block, and the final class token."""

    def __init__(self, canon: Mapping[str, torch.Tensor], info: ViT2dInfo) -> None:
        super().__init__()
        self.info = info
        self.p = {k: v for k, v in canon.items()}

    def _ln(self, x, name):
        return nn.functional.layer_norm(x, x.shape[-1:], self.p[f"{name}.weight"], self.p[f"{name}.bias"],
                                        self.info.layer_norm_eps)

    def _lin(self, x, name):
        return nn.functional.linear(x, self.p[f"{name}.weight"], self.p.get(f"{name}.bias"))

    def stages(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        p, heads = self.p, self.info.num_heads
        x = nn.functional.conv2d(img, p["patch_embed.proj.weight"], p["patch_embed.proj.bias"],
                                 stride=self.info.patch_size).flatten(2).transpose(1, 2)
        x = torch.cat((p["cls_token"].expand(x.shape[0], -1, -1), x), 1) + p["pos_embed"]
        out = {"embedding": x}
        for i in range(self.info.depth):
            b = f"blocks.{i}"
            h = self._ln(x, f"{b}.norm1")
            n, t, d = h.shape
            q, k, v = self._lin(h, f"{b}.attn.qkv").reshape(n, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            a = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1) @ v
            x = x + self._lin(a.transpose(1, 2).reshape(n, t, d), f"{b}.attn.proj")
            h = nn.functional.gelu(self._lin(self._ln(x, f"{b}.norm2"), f"{b}.mlp.fc1"))
            x = out[f"layer{i}"] = x + self._lin(h, f"{b}.mlp.fc2")
        out["cls"] = self._ln(x, "norm")[:, 0]
        return out


