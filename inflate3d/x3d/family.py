"""The X3D family's hooks (see ``inflate3d.families.FamilyHooks``).

X3D is trained as a video network from the start (no 2D ancestor), so there is no ``prepare``,
``verify`` or ``diff_inflated``: the commands say the family does not support inflation.
"""
from __future__ import annotations

from ..slowfast.archs import register_builder, state_dict_shapes
from . import archs
from .convert import convert, describe, detect_scheme, native_names  # noqa: F401  (hooks)
from .schemes import SCHEMES as _SCHEMES

NAME = "x3d"
ARCH_FAMILIES = (archs.FAMILY,)
SCHEMES = tuple(_SCHEMES)  # mmaction2 (native), pyslowfast, pytorchvideo

register_builder(archs.FAMILY, archs.build)


def shapes(arch_name: str, num_classes: int | None, overrides: dict) -> dict[str, tuple[int, ...]]:
    return state_dict_shapes(arch_name, num_classes=num_classes, **overrides)
