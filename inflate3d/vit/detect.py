"""Which ViT-family checkpoint a set of keys is (torch-free: ``inspect`` and ``families`` ask this
before anything imports the networks)."""
from __future__ import annotations


def detect_format(keys) -> str | None:
    keys = set(keys)
    if "blocks.0.attn.qkv.weight" in keys and "patch_embed.proj.weight" in keys:
        return "timm" if not any(".temporal_" in k for k in keys) else None
    if "conv_proj.weight" in keys and "class_token" in keys:
        return "torchvision"
    if "embeddings.patch_embeddings.projection.weight" in keys and (
            "encoder.layer.0.attention.attention.query.weight" in keys  # as saved by save_pretrained
            or "layers.0.attention.q_proj.weight" in keys):  # transformers >= 5's state_dict()
        return "huggingface"
    return None


def detect_scheme(keys) -> str | None:
    """The scheme of a video-transformer checkpoint's keys (2D ViTs: their source format)."""
    keys = list(keys)
    ks = set(keys)
    # a name is in some key exactly when it is in the keys joined by a newline (no name here holds
    # one): a search in C tells most checkpoints apart before any loop over their keys
    text = "\n".join(ks)
    if ("transformer_layers." in text or "backbone.embeddings.patch_embeddings." in text
            or "backbone.encoder.layer." in text) and (
            any(k.startswith(("backbone.transformer_layers.", "transformer_layers.layers.")) for k in ks) or
            any(k.startswith(("backbone.embeddings.patch_embeddings.", "backbone.encoder.layer.")) for k in ks)):
        return "mmaction2"
    bare = ks
    if "embeddings.patch_embeddings.projection.weight" in text:  # else no key is Hugging Face's
        bare = {k[len(p):] for k in ks for p in ("timesformer.", "vivit.", "vit.") if k.startswith(p)} or ks
    if "embeddings.patch_embeddings.projection.weight" in bare and (
            "encoder.layer.0.attention.attention.qkv.weight" in bare
            or "encoder.layer.0.attention.attention.query.weight" in bare
            or "layers.0.attention.q_proj.weight" in bare):  # transformers >= 5's state_dict()
        return "huggingface"
    if ".temporal_attn." in text or {"time_embed", "model.time_embed"} & ks:
        return "timesformer"
    fmt = detect_format(ks)
    return f"{fmt}-vit" if fmt in ("timm", "torchvision") else None
