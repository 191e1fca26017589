"""mmaction2's ``SwinTransformer3D`` (mmaction2 1.2.0): the same module tree, state-dict names,
shapes and forward semantics (windows shrink to the feature size, inputs are padded to whole
windows after ``norm1`` and the padding tokens are *not* masked, the cyclic shift is masked).

Layout: ``patch_embed`` (Conv3d 2x4x4 + LN) -> ``layers.i`` (blocks, then PatchMerging for all
but the last stage) -> ``norm{last}``; the output is (B, C, T', H', W') for ``I3DHead``.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn
from torch.nn import functional as F


def relative_position_index(window: Sequence[int]) -> torch.Tensor:
    """(N, N) index into a ((2Wd-1)(2Wh-1)(2Ww-1), heads) bias table, N = Wd*Wh*Ww, exactly as
    mmaction2 (and torchvision) build it: d-major offsets, each shifted to start at 0. Works for
    2-D windows too (the 2D Swin index). Always computed on the CPU (a meta-device build would
    otherwise pay for importing the meta kernels)."""
    return _index(tuple(window)).clone()


@lru_cache(maxsize=16)
def _index(window: tuple[int, ...]) -> torch.Tensor:
    with torch.device("cpu"):
        return _build_index(window)


def _build_index(window: tuple[int, ...]) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in window], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    for i, w in enumerate(window):
        rel[:, :, i] += w - 1
    for i in range(len(window) - 1):
        stride = 1
        for w in window[i + 1:]:
            stride *= 2 * w - 1
        rel[:, :, i] *= stride
    return rel.sum(-1)


def window_and_shift(size: Sequence[int], window: Sequence[int], shift: Sequence[int]):
    """mmaction2's ``get_window_size``: a dimension no larger than its window is one window, unshifted."""
    w, s = list(window), list(shift)
    for i, n in enumerate(size):
        if n <= window[i]:
            w[i], s[i] = n, 0
    return tuple(w), tuple(s)


def window_partition(x: torch.Tensor, w: Sequence[int]) -> torch.Tensor:
    b, d, h, wd, c = x.shape
    x = x.view(b, d // w[0], w[0], h // w[1], w[1], wd // w[2], w[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, w[0] * w[1] * w[2], c)


def window_reverse(windows: torch.Tensor, w: Sequence[int], b: int, d: int, h: int, wd: int) -> torch.Tensor:
    x = windows.view(b, d // w[0], h // w[1], wd // w[2], w[0], w[1], w[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, wd, -1)


@lru_cache(maxsize=32)
def _mask(d: int, h: int, w: int, window: tuple, shift: tuple) -> torch.Tensor:
    img = torch.zeros((1, d, h, w, 1))
    cnt = 0
    for ds in (slice(-window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
        for hs in (slice(-window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
            for ws in (slice(-window[2]), slice(-window[2], -shift[2]), slice(-shift[2], None)):
                img[:, ds, hs, ws, :] = cnt
                cnt += 1
    win = window_partition(img, window).squeeze(-1)
    mask = win.unsqueeze(1) - win.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def compute_mask(d: int, h: int, w: int, window: tuple, shift: tuple, like: torch.Tensor) -> torch.Tensor:
    """The shifted-window attention mask (-100 between tokens of different regions), mmaction2's
    ``compute_mask``; built for the padded size, never stored in a checkpoint."""
    return _mask(d, h, w, tuple(window), tuple(shift)).to(device=like.device, dtype=like.dtype)


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window: Sequence[int], num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None) -> None:
        super().__init__()
        self.window_size = tuple(window)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros(
            (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1), num_heads))
        self.register_buffer("relative_position_index",
                             relative_position_index(window).to(self.relative_position_bias_table.device))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0))
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b_, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth (mmcv's ``DropPath``): in training, zero a sample's residual branch with
    probability p and scale the kept ones by 1/(1-p); the identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)).floor_()
        return x.div(keep) * mask


class SwinTransformerBlock3D(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: Sequence[int], shift: Sequence[int],
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.window_size, self.shift_size = tuple(window), tuple(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads, qkv_bias, qk_scale)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _attention(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, d, h, w, c = x.shape
        window, shift = window_and_shift((d, h, w), self.window_size, self.shift_size)
        x = self.norm1(x)
        pads = [(window[i] - n % window[i]) % window[i] for i, n in enumerate((d, h, w))]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))  # zeros after the norm: unmasked
        _, dp, hp, wp, _ = x.shape
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        out = self.attn(window_partition(x, window), mask=mask if shifted else None)
        x = window_reverse(out.view(-1, *window, c), window, b, dp, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :d, :h, :w, :].contiguous()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop_path(self._attention(x, mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 spatial neighbours concatenated as [(0,0), (1,0), (0,1), (1,1)] (row, column), LN, linear."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w, _ = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, window: Sequence[int], mlp_ratio: float,
                 qkv_bias: bool, qk_scale: float | None, downsample: bool,
                 drop_paths: Sequence[float] | None = None) -> None:
        super().__init__()
        self.window_size = tuple(window)
        self.shift_size = tuple(w // 2 for w in window)
        self.blocks = nn.ModuleList(
            SwinTransformerBlock3D(dim, num_heads, window, (0, 0, 0) if i % 2 == 0 else self.shift_size,
                                   mlp_ratio, qkv_bias, qk_scale, drop_paths[i] if drop_paths else 0.0)
            for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> the blocks' output (B, D, H, W, C); downsampling is the caller's."""
        _, _, d, h, w = x.shape
        window, shift = window_and_shift((d, h, w), self.window_size, self.shift_size)
        padded = [-(-n // window[i]) * window[i] for i, n in enumerate((d, h, w))]
        x = x.permute(0, 2, 3, 4, 1)
        mask = compute_mask(*padded, window, shift, x) if any(shift) else None
        for blk in self.blocks:
            x = blk(x, mask)
        return x


class PatchEmbed3D(nn.Module):
    def __init__(self, patch: Sequence[int], in_channels: int, dim: int, norm: bool) -> None:
        super().__init__()
        self.patch_size = tuple(patch)
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, d, h, w = x.shape
        p = self.patch_size
        x = F.pad(x, (0, (-w) % p[2], 0, (-h) % p[1], 0, (-d) % p[0]))
        x = self.proj(x)
        if self.norm is not None:
            x = self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return x


class SwinTransformer3D(nn.Module):
    """The backbone. ``embed_dims``/``depths``/``num_heads`` as mmaction2's ``arch`` dict; the output
    is the last stage, normalised by ``norm{L-1}`` (``norm3`` for four stages), as (B, C, T, H, W)."""

    def __init__(self, embed_dims: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), patch_size: Sequence[int] = (2, 4, 4),
                 window_size: Sequence[int] = (8, 7, 7), in_channels: int = 3, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, patch_norm: bool = True,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if len(depths) != len(num_heads) or not 1 <= len(depths) <= 4:
            raise ValueError("depths and num_heads need the same length, 1 to 4 stages")
        self.embed_dims, self.depths, self.num_heads = embed_dims, tuple(depths), tuple(num_heads)
        self.patch_size, self.window_size = tuple(patch_size), tuple(window_size)
        self.patch_embed = PatchEmbed3D(patch_size, in_channels, embed_dims, patch_norm)
        total = sum(depths)  # stochastic depth rising linearly over all blocks, as mmaction2
        dpr = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        self.layers = nn.ModuleList(
            BasicLayer(embed_dims * 2 ** i, d, h, window_size, mlp_ratio, qkv_bias, qk_scale,
                       downsample=i < len(depths) - 1, drop_paths=dpr[sum(depths[:i]): sum(depths[:i + 1])])
            for i, (d, h) in enumerate(zip(depths, num_heads)))
        self.num_features = embed_dims * 2 ** (len(depths) - 1)
        self.last = len(depths) - 1
        self.add_module(f"norm{self.last}", nn.LayerNorm(self.num_features))
        self.feat_dim = self.num_features

    @property
    def out_norm(self) -> nn.LayerNorm:
        return getattr(self, f"norm{self.last}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for i, layer in enumerate(self.layers):
            x = layer(x.contiguous())  # (B, D, H, W, C)
            if i == self.last:
                return self.out_norm(x).permute(0, 4, 1, 2, 3).contiguous()
            x = layer.downsample(x).permute(0, 4, 1, 2, 3)
        raise AssertionError("unreachable")

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """mmaction2's init: truncated normal (std 0.02) for Linear weights and bias tables, zero
        biases, LayerNorm 1/0; the patch conv keeps PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, WindowAttention3D):
                nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02, generator=generator)
