"""Hugging Face folders: ``config.json`` + ``model.safetensors`` that ``from_pretrained(DIR)`` loads
offline, written atomically as a folder (a temporary folder beside it, proven, then renamed).

The config describes the network exactly: hidden_act and layer_norm_eps are the source ViT's (timm
and torchvision use exact GELU and eps 1e-6; ViViT's own default would be gelu_fast), qkv_bias is
true because the video networks always carry q/k/v biases (zero when the ViT had none).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CHECK_FAILED, Inflate3dError
from .schemes import from_native_key, to_native_key

if TYPE_CHECKING:  # torch-free to import: ``settings_from_config`` serves ``inspect``
    import torch

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def config(family: str, settings: dict, facts: dict, num_classes: int | None) -> dict:
    """config.json for ``TimesformerModel`` / ``VivitModel`` (or their video classifiers)."""
    common = {"num_channels": 3, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
              "initializer_range": 0.02, "qkv_bias": True, "hidden_act": facts["hidden_act"],
              "layer_norm_eps": float(facts["layer_norm_eps"]), "dtype": facts.get("dtype", "float32")}
    if family == "vivit":
        common["hidden_act"] = settings.get("hidden_act", common["hidden_act"])
        cfg = {"model_type": "vivit", "image_size": settings["image_size"], "num_frames": settings["num_frames"],
               "tubelet_size": list(settings["tubelet_size"]), "hidden_size": settings["hidden_size"],
               "num_hidden_layers": settings["num_hidden_layers"],
               "num_attention_heads": settings["num_attention_heads"],
               "intermediate_size": settings["intermediate_size"]}
        arch = "VivitForVideoClassification" if num_classes else "VivitModel"
    else:
        cfg = {"model_type": "timesformer", "image_size": settings["img_size"], "patch_size": settings["patch_size"],
               "num_frames": settings["num_frames"], "hidden_size": settings["embed_dims"],
               "num_hidden_layers": settings["num_transformer_layers"], "num_attention_heads": settings["num_heads"],
               "intermediate_size": settings.get("feedforward_channels") or 4 * settings["embed_dims"],
               "attention_type": settings["attention_type"], "drop_path_rate": 0}
        arch = "TimesformerForVideoClassification" if num_classes else "TimesformerModel"
    cfg = {"architectures": [arch], **cfg, **common}
    if num_classes:
        cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_classes)}
        cfg["label2id"] = {f"LABEL_{i}": i for i in range(num_classes)}
    return dict(sorted(cfg.items()))


_NEEDED = {"vivit": ("image_size", "num_frames", "tubelet_size", "hidden_size", "num_hidden_layers",
                     "num_attention_heads", "intermediate_size", "layer_norm_eps"),
           "timesformer": ("image_size", "patch_size", "num_frames", "hidden_size", "num_hidden_layers",
                           "num_attention_heads", "intermediate_size", "attention_type", "layer_norm_eps")}


def settings_from_config(cfg: dict, origin: str = "config.json") -> tuple[str, dict]:
    """(family, native backbone settings) of a Hugging Face config.json (``origin``: the file it
    came with, for messages)."""
    family = "vivit" if cfg.get("model_type") == "vivit" else "timesformer"
    missing = [k for k in _NEEDED[family] if k not in cfg]
    if missing:
        raise Inflate3dError(f"{origin}: its Hugging Face config has no {', '.join(missing)}; a {family} "
                             "config.json names them all (the file was edited or is damaged)")
    if family == "vivit":
        if not isinstance(cfg["tubelet_size"], list):
            raise Inflate3dError(f"{origin}: its Hugging Face config's tubelet_size is not a list (time, height, width)")
        return "vivit", {"image_size": cfg["image_size"], "num_frames": cfg["num_frames"],
                         "tubelet_size": list(cfg["tubelet_size"]), "hidden_size": cfg["hidden_size"],
                         "num_hidden_layers": cfg["num_hidden_layers"],
                         "num_attention_heads": cfg["num_attention_heads"],
                         "intermediate_size": cfg["intermediate_size"], "layer_norm_eps": cfg["layer_norm_eps"],
                         "hidden_act": cfg.get("hidden_act", "gelu_fast")}  # VivitConfig's default
    if cfg.get("hidden_act", "gelu") != "gelu":  # mmaction2's TimeSformer computes exact GELU
        raise Inflate3dError(f"a TimeSformer with hidden_act {cfg['hidden_act']!r}: the native network (mmaction2's) "
                             "computes exact GELU only")
    return "timesformer", {"img_size": cfg["image_size"], "patch_size": cfg["patch_size"],
                           "num_frames": cfg["num_frames"], "embed_dims": cfg["hidden_size"],
                           "num_transformer_layers": cfg["num_hidden_layers"], "num_heads": cfg["num_attention_heads"],
                           "feedforward_channels": cfg["intermediate_size"], "attention_type": cfg["attention_type"],
                           "norm_eps": cfg["layer_norm_eps"]}


def check_folder(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise Inflate3dError(f"{out}: exists and is not a folder; a Hugging Face output is a folder")
    if out.exists() and not force:
        raise Inflate3dError(f"{out}: already exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise Inflate3dError(f"{out.parent}: output folder does not exist; create it first")


def to_hf(native: dict[str, torch.Tensor], family: str, divided: bool, origin: str) -> dict[str, torch.Tensor]:
    with_head = "cls_head.fc_cls.weight" in native
    out = {}
    for k, v in native.items():
        ok, new = from_native_key(family, "huggingface", k, divided, with_head)
        if not ok or new is None:
            raise Inflate3dError(f"{origin}: {k} has no Hugging Face counterpart")
        out[new] = v
    return out


def write_folder(out: Path, native: dict[str, torch.Tensor], family: str, settings: dict, facts: dict,
                 meta: dict[str, str], *, force: bool, origin: str) -> list[str]:
    """Write and prove the folder; returns the proof lines. Nothing is left behind on failure."""
    from ..diff.metrics import bit_equal
    from ..io.load import load_checkpoint
    from ..io.save import write_safetensors

    out = Path(out)
    check_folder(out, force=force)
    divided = settings.get("attention_type") == "divided_space_time"
    head = native.get("cls_head.fc_cls.weight")
    dtype = str(next(iter(native.values())).dtype).replace("torch.", "")
    cfg = config(family, settings, {**facts, "dtype": dtype}, None if head is None else int(head.shape[0]))
    hf = to_hf(native, family, divided, origin)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; give the usual permissions
    try:
        with open(tmp / CONFIG, "w") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")
        with open(tmp / WEIGHTS, "wb") as f:
            specs = [(k, tuple(v.shape), v.dtype) for k, v in hf.items()]
            write_safetensors(f, specs, hf.items(), {**meta, "format": "pt", "inflate3d_scheme": "huggingface"})
            f.flush()
            os.fsync(f.fileno())
        back = load_checkpoint(tmp).tensors
        native_back = {}
        for k, v in back.items():
            ok, n = to_native_key(family, "huggingface", k, divided)
            native_back[n] = v
        differ = [k for k, v in native.items() if k not in native_back or not bit_equal(native_back[k], v)]
        if differ or len(native_back) != len(native):
            raise Inflate3dError(f"{out}: the written folder does not read back as the network "
                                 f"({len(differ)} tensors differ: {', '.join(differ[:3])})", exit_code=CHECK_FAILED)
        _commit(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [f"{CONFIG} for {cfg['architectures'][0]} (hidden_act {cfg['hidden_act']}, layer_norm_eps "
            f"{cfg['layer_norm_eps']:g}, {cfg['num_frames']} frames, {cfg['image_size']}px)",
            f"{WEIGHTS} reads back as the native network bit for bit ({len(hf)} tensors)"]


def _commit(tmp: Path, out: Path, force: bool) -> None:
    if out.exists():
        if not force:
            raise Inflate3dError(f"{out}: was created while writing; pass --force to overwrite it")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.rename(out, old / "x")
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
    with contextlib.suppress(OSError):
        fd = os.open(out.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

