"""``load_model(path)``: any checkpoint of any scheme and format -> the network the file describes,
weights loaded strictly, in eval mode.

The file is converted to the native (mmaction2) names in memory, its architecture read as
``convert`` reads it (the file's record, the structure of its names, stated conventions), and the
named architecture built through ``build_model``. A SlowFast model takes one clip (mmaction2
style) or a ``[slow, fast]`` list (PySlowFast / pytorchvideo style).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from torch import nn


def load_model(path: str | os.PathLike, *, arch: str | None = None,
               settings: Mapping[str, Any] | None = None, trust_pickle: bool = False,
               device: str | None = None) -> nn.Module:
    """The ready ``nn.Module`` (eval mode) of the architecture ``path`` describes.

    ``arch`` names the architecture (else it is inferred); ``settings`` are ``--set``-style
    overrides for facts the file does not state (``{'speed_ratio': 4}``). The notes of the
    conversion (assumptions included) are on ``model.inflate3d_notes``.
    """
    from ..io.load import load_checkpoint
    from ..slowfast.archs import build_model
    from .convert import convert

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    conv = convert(ckpt.tensors, source=None, target="mmaction2", origin=str(path), arch=arch,
                   config=ckpt.config, metadata=ckpt.metadata, settings=settings)
    model = build_model(conv.arch_name, num_classes=conv.arch.num_classes, init=False, device=device,
                        **conv.arch_overrides)
    model.load_state_dict(conv.tensors, strict=True)
    model.inflate3d_arch = conv.arch_name
    model.inflate3d_notes = list(conv.notes)
    return model.eval()
