"""What a torchvision 2D ResNet state dict looks like: its depth, and the 2D name of a 3D unit."""
from __future__ import annotations

import re
from collections.abc import Mapping

from typing import Any

from ..errors import Inflate3dError
from ..slowfast.depths import DEPTHS, depth_of

_BLOCK_RE = re.compile(r"^layer([1-4])\.(\d+)\.")


def infer_depth(tensors: Mapping[str, Any], origin: str) -> int:
    """The ResNet depth (18..152) of a torchvision-style state dict, read from its keys."""
    if "conv1.weight" not in tensors or tensors["conv1.weight"].dim() != 4:
        raise Inflate3dError(f"{origin}: not a torchvision-style 2D ResNet (no 4-D conv1.weight); "
                             "give a ResNet-18/34/50/101/152 state dict")
    blocks = [0, 0, 0, 0]
    for key in tensors:
        if m := _BLOCK_RE.match(key):
            stage, index = int(m[1]) - 1, int(m[2])
            blocks[stage] = max(blocks[stage], index + 1)
    bottleneck = any(".conv3." in k for k in tensors)
    if (depth := depth_of(blocks, bottleneck)) is not None:
        return depth
    raise Inflate3dError(f"{origin}: blocks per stage {tuple(blocks)} "
                         f"({'bottleneck' if bottleneck else 'basic'}) match no ResNet depth "
                         f"in {DEPTHS}")


def names_2d(unit_path: str) -> tuple[str, str]:
    """(conv, bn) names in torchvision of a 3D conv unit, e.g. ``layer1.0.conv2`` ->
    (``layer1.0.conv2``, ``layer1.0.bn2``), ``layer2.0.downsample`` -> (``...downsample.0``,
    ``...downsample.1``), ``conv1`` -> (``conv1``, ``bn1``)."""
    head, _, last = unit_path.rpartition(".")
    prefix = f"{head}." if head else ""
    if last == "downsample":
        return f"{unit_path}.0", f"{unit_path}.1"
    if m := re.fullmatch(r"conv(\d+)", last):
        return unit_path, f"{prefix}bn{m[1]}"
    raise ValueError(f"no 2D counterpart for {unit_path!r}")


def describe_2d(tensors: Mapping[str, Any]) -> str | None:
    """``'ResNet-18 (torchvision names)'`` when ``tensors`` is a 2D torchvision ResNet, else None;
    shapes alone are read, so meta tensors work too."""
    conv1 = tensors.get("conv1.weight")
    if conv1 is None or conv1.dim() != 4 or not any(k.startswith("layer1.") for k in tensors):
        return None
    try:
        return f"ResNet-{infer_depth(tensors, '')} (torchvision names)"
    except Inflate3dError:
        return "ResNet (torchvision names)"
