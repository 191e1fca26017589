"""A checkpoint seen through native (mmaction2) names, whatever scheme it was saved in.

Only names are mapped up front; tensors are read one at a time when asked for, and the head of a
[slow, fast] scheme is permuted on the way out, so cross-scheme comparisons line up column for column.
"""
from __future__ import annotations

import re

import torch

from ..errors import Inflate3dError
from ..inflate.convert import HEAD_W, native_names, scheme, slow_channels, swap_head_columns
from ..inflate.detect import detect_scheme
from ..io.lazy import TensorFile


class NativeView:
    def __init__(self, tf: TensorFile, *, native: bool = True) -> None:
        self.file = tf
        self.notes: list[str] = []
        self.scheme, self.two = "raw", False
        self._map = {k: k for k in tf.keys()}  # native key -> file key
        self._swap: int | None = None
        if native:
            self._to_native(tf)

    def _to_native(self, tf: TensorFile) -> None:
        from .. import families

        hit = families.for_keys(tf.keys())
        if hit is not None:  # another family's checkpoint: its own names to native
            family, self.scheme = hit
            self._map = families.hook(family, "native_names", "diff")(tf.keys(), self.scheme, str(tf.path))
            return
        try:
            name, self.two = detect_scheme(tf.keys(), str(tf.path))
        except Inflate3dError:
            return  # not a video ResNet: compare raw names
        self.scheme = name
        src = scheme(name)
        mapped, _, dropped = native_names(tf.keys(), src, self.two, str(tf.path))
        self._map = mapped
        if dropped:
            self.notes.append(f"{tf.path.name}: {len(dropped)} non-weight entries not compared")
        if self.two and src.head_slow_first and HEAD_W in mapped:
            self._swap = self._slow_channels()

    def _slow_channels(self) -> int:
        return slow_channels({k: self.shape(k) for k in self._map})

    def keys(self) -> list[str]:
        return list(self._map)

    def shape(self, key: str) -> tuple[int, ...]:
        return self.file.shape(self._map[key])

    def dtype(self, key: str) -> torch.dtype:
        return self.file.dtype(self._map[key])

    def get(self, key: str) -> torch.Tensor:
        t = self.file.get(self._map[key])
        if key == HEAD_W and self._swap is not None:
            t = swap_head_columns(t, first=self._swap)  # [slow, fast] -> mmaction2's [fast, slow]
        return t


_NATIVE_GROUP = re.compile(r"backbone\.(?:(slow|fast)_path\.)?(conv1|layer\d)(?:_lateral)?\.")


def group_of(key: str) -> str:
    """The module a tensor belongs to: stem, each stage (per pathway), laterals, head."""
    if key.startswith("cls_head."):
        return "head"
    if "_lateral." in key:
        return "laterals"
    if m := _NATIVE_GROUP.match(key):
        path, part = m.groups()
        return f"{path + ' ' if path else ''}{'stem' if part == 'conv1' else part}"
    parts = key.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]
