"""Small seeded 2D Swins in each codebase's real naming, for the Video Swin tests."""
from __future__ import annotations

import torch
from torch.nn import functional as F

TINY = dict(embed_dim=32, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=4)
OVERRIDES = dict(embed_dims=32, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=(8, 4, 4))  # on swin3d_t
SIZE = 64  # 16, 8, 4 tokens: every stage at least one 4x4 window (shifted and masked in the first two)


def perturb(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Distinct values in every tensor (LayerNorms not 1/0, bias tables not 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return module.eval()


def timm_swin(num_classes: int = 10, seed: int = 0):
    import timm

    torch.manual_seed(seed)
    net = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=SIZE,
                            num_classes=num_classes, **TINY)
    return perturb(net, seed)


def microsoft_form(net) -> dict[str, torch.Tensor]:
    """The original Swin repo's state dict for a timm >= 0.9 net: the merge closes stage i (timm
    opens stage i+1 with it), ``head`` instead of ``head.fc``, and its persistent buffers."""
    out = {}
    for k, v in net.state_dict().items():
        parts = k.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            k = ".".join(["layers", str(int(parts[1]) - 1), *parts[2:]])
        out[k.replace("head.fc.", "head.")] = v
    for i, layer in enumerate(net.layers):
        for j, blk in enumerate(layer.blocks):
            out[f"layers.{i}.blocks.{j}.attn.relative_position_index"] = blk.attn.relative_position_index
            if blk.attn_mask is not None:
                out[f"layers.{i}.blocks.{j}.attn_mask"] = blk.attn_mask
    order = sorted(out, key=lambda k: (k.startswith("norm") or k.startswith("head"), k))
    return {k: out[k].clone() for k in order}


def mmpretrain_form(ms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mmpretrain's names for Microsoft weights, as its converter (swin_to_mmpretrain) writes them,
    including its reordering of the merge features for nn.Unfold."""
    def reduction(x):
        o, i = x.shape
        return x.reshape(o, 4, i // 4)[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(o, i)

    def norm(x):
        i = x.shape[0]
        return x.reshape(4, i // 4)[[0, 2, 1, 3], :].transpose(0, 1).reshape(i)

    out = {}
    for k, v in ms.items():
        if "relative_position_index" in k or "attn_mask" in k:
            continue
        if k.startswith("patch_embed."):
            k = "backbone." + k.replace("patch_embed.proj", "patch_embed.projection")
        elif k.startswith("layers."):
            k = "backbone." + k.replace("layers.", "stages.", 1)
            k = k.replace(".attn.", ".attn.w_msa.").replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(".mlp.fc2.", ".ffn.layers.1.")
            if ".downsample.reduction" in k:
                v = reduction(v)
            elif ".downsample.norm" in k:
                v = norm(v)
        elif k.startswith("norm."):
            k = "backbone.norm2." + k.split(".")[1]
        elif k.startswith("head."):
            k = "head.fc." + k.split(".")[1]
        out[k] = v
    return out


def mmaction2_inflate_weights(ms: dict[str, torch.Tensor], model3d, patch_t: int, window) -> dict[str, torch.Tensor]:
    """An independent restatement of mmaction2's ``SwinTransformer3D.inflate_weights`` on a
    Microsoft ``checkpoint['model']``; returns the backbone tensors it would load."""
    state_dict = dict(ms)
    for k in [k for k in state_dict if "relative_position_index" in k or "attn_mask" in k]:
        del state_dict[k]
    state_dict["patch_embed.proj.weight"] = \
        state_dict["patch_embed.proj.weight"].unsqueeze(2).repeat(1, 1, patch_t, 1, 1) / patch_t
    current = model3d.state_dict()
    for k in [k for k in state_dict if "relative_position_bias_table" in k]:
        pre = state_dict[k]
        l1, nh1 = pre.size()
        l2, nh2 = current[k].size()
        l2 = (2 * window[1] - 1) * (2 * window[2] - 1)
        assert nh1 == nh2
        if l1 != l2:
            s1 = int(l1 ** 0.5)
            pre = F.interpolate(pre.permute(1, 0).view(1, nh1, s1, s1),
                                size=(2 * window[1] - 1, 2 * window[2] - 1), mode="bicubic").view(nh2, l2).permute(1, 0)
        state_dict[k] = pre.repeat(2 * window[0] - 1, 1)
    last = max(int(k.split(".")[1]) for k in state_dict if k.startswith("layers.")) 
    state_dict[f"norm{last}.weight"] = state_dict.pop("norm.weight")
    state_dict[f"norm{last}.bias"] = state_dict.pop("norm.bias")
    state_dict.pop("head.weight", None)
    state_dict.pop("head.bias", None)
    return state_dict
