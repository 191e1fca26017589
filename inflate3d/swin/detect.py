"""Which Swin checkpoint a set of keys is (torch-free: ``inspect`` and ``families`` ask this before
anything imports the networks)."""
from __future__ import annotations

from collections.abc import Iterable

PREFIX_2D = "swin2d-"  # 2D Swin schemes, as inspect/diff name them: swin2d-timm, swin2d-microsoft, ...


def _text(keys) -> str:
    """The keys as one text: a name is in some key exactly when it is in the text (the keys are
    joined by a newline, which no name searched for holds), and one search in C replaces a loop
    over a thousand keys (every checkpoint ``inspect`` reads asks every family)."""
    return "\n".join(keys)


def detect_2d(keys: Iterable[str]) -> str | None:
    """Which 2D Swin codebase wrote these keys, or ``None``."""
    keys = set(keys)
    text = _text(keys)
    if "embeddings.patch_embeddings.projection" in text \
            and "relative_position_bias_table" in text:  # a ViT's names have no bias table
        return "huggingface"
    if "backbone.stages." in text and ".attn.w_msa." in text \
            and any(k.startswith("backbone.stages.") and ".attn.w_msa." in k for k in keys):
        return "mmpretrain"
    if "features.0.0.weight" in keys and any(k.startswith("features.1.0.attn.") for k in keys):
        return "torchvision"
    if "patch_embed.proj.weight" in keys and "layers.0.blocks.0.attn.qkv.weight" in keys and "norm.weight" in keys:
        if "head.fc.weight" in keys or ("layers.1.downsample.reduction.weight" in keys
                                        and "layers.0.downsample.reduction.weight" not in keys):
            return "timm"
        return "microsoft"
    return None


def detect_3d(keys: Iterable[str]) -> str | None:
    """'mmaction2' (recognizer or bare backbone) or 'torchvision' for Video Swin keys, else ``None``."""
    keys = set(keys)
    if "patch_embed.proj.weight" not in _text(keys):  # both schemes have it
        return None
    bare = {k[len("backbone."):] for k in keys if k.startswith("backbone.")} or keys
    if "patch_embed.proj.weight" in bare and "layers.0.blocks.0.attn.qkv.weight" in bare \
            and any(k.startswith("norm") and k[4:5].isdigit() for k in bare):
        return "mmaction2"
    if "patch_embed.proj.weight" in keys and "features.0.0.attn.qkv.weight" in keys:
        return "torchvision"
    return None


def detect_scheme(keys) -> str | None:
    """'mmaction2' / 'torchvision' for a Video Swin, 'swin2d-<codebase>' for a 2D Swin, else None."""
    keys = list(keys)
    scheme2d = detect_2d(keys)
    return detect_3d(keys) or (PREFIX_2D + scheme2d if scheme2d else None)
