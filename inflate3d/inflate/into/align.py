"""Align a 3D network's layers with a 2D network's by structure, never by name.

Walking the 3D layers in forward order, a 3D layer corresponds to the 2D layer of the same kind,
output channels, spatial kernel and groups, with as many input channels or more (extra ones come
from layers without a 2D counterpart, e.g. SlowFast's laterals, concatenated at the end), whose
inputs come from exactly the 2D layers that the 3D layer's already aligned inputs correspond to.
That data-flow condition tells apart layers a shape cannot (ResNet-50's layer1.0.conv3 and its
downsample are both 64->256 1x1). Two candidates are an ambiguity, reported, never guessed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import Inflate3dError
from .trace import INPUT, Layer

LARGER_INPUT_NOTE = "extra input channels come from layers with no 2D counterpart"


@dataclass(frozen=True)
class Match:
    layer3d: Layer
    layer2d: Layer
    pad: int  # input channels of the 3D layer beyond the 2D one's (zeros, at the end)
    hinted: bool = False


def mismatch(a: Layer, b: Layer) -> str | None:
    """Why 3D layer ``a`` cannot take 2D layer ``b``'s weights (None: it can, by shape)."""
    if a.kind != b.kind:
        return f"a {a.kind}, not a {b.kind}"
    if a.out_channels != b.out_channels:
        return f"{a.out_channels} output channels, not {b.out_channels}"
    if a.kind == "linear":
        return None if a.in_channels == b.in_channels else f"{a.in_channels} inputs, not {b.in_channels}"
    if a.kind == "conv":
        if a.kernel != b.kernel:
            return f"a {'x'.join(map(str, a.kernel))} spatial kernel, not {'x'.join(map(str, b.kernel))}"
        if a.groups != b.groups:
            return f"{a.groups} groups, not {b.groups}"
        if a.in_channels < b.in_channels or (a.in_channels > b.in_channels and a.groups != 1):
            return f"{a.in_channels} input channels, not {b.in_channels}"
    return None


def align(l3: list[Layer], l2: list[Layer], *, hints: Mapping[str, str] | None = None,
          origin: str, source: str) -> list[Match]:
    """The 3D <-> 2D layer correspondence. Raises on an ambiguity (two 2D candidates, or two 3D
    layers for one 2D layer) and when a 2D conv / norm finds no place in the 3D network."""
    hints = dict(hints or {})
    by_name2 = {b.name: b for b in l2}
    names3 = {a.name for a in l3}
    for a_name, b_name in hints.items():
        if a_name not in names3:
            raise Inflate3dError(f"{origin}: hint {a_name}={b_name}: the model has no conv / norm / "
                                 f"linear layer {a_name!r} in its forward")
        if b_name not in by_name2:
            raise Inflate3dError(f"{origin}: hint {a_name}={b_name}: {source} has no layer {b_name!r}")
    to2: dict[int, int] = {}  # 3D index -> 2D index
    to3: dict[int, int] = {}
    matches: list[Match] = []
    for a in l3:
        mapped = frozenset(p if p == INPUT else to2[p] for p in a.preds if p == INPUT or p in to2)
        extra_inputs = any(p != INPUT and p not in to2 for p in a.preds)
        if a.name in hints:
            b = by_name2[hints[a.name]]
            why = mismatch(a, b)
            if why:
                raise Inflate3dError(f"{origin}: hint {a.name}={b.name}: {a.name} ({a.signature}) "
                                     f"cannot take {b.name} ({b.signature}): it has {why}")
            cands, hinted = [b], True
        else:
            cands = [b for b in l2 if b.preds == mapped and mismatch(a, b) is None
                     and (a.in_channels == b.in_channels or extra_inputs)
                     and b.name not in hints.values()]
            hinted = False
        if not cands:
            continue
        if len(cands) > 1:
            raise Inflate3dError(
                f"{origin}: ambiguous: {a.name} ({a.signature}) fits {len(cands)} layers of {source} "
                f"equally well ({', '.join(b.name for b in cands)}); pass a name hint, e.g. "
                f"hints={{{a.name!r}: {cands[0].name!r}}} (--hint {a.name}={cands[0].name})")
        b = cands[0]
        if b.index in to3:
            other = l3[to3[b.index]].name
            raise Inflate3dError(
                f"{origin}: ambiguous: both {other} and {a.name} ({a.signature}) fit {b.name} of "
                f"{source}; pass a name hint for the one that should take it (--hint {a.name}=...)")
        to2[a.index], to3[b.index] = b.index, a.index
        matches.append(Match(a, b, a.in_channels - b.in_channels if a.kind == "conv" else 0, hinted))
    unplaced = [b for b in l2 if b.kind != "linear" and b.index not in to3]
    if unplaced:
        raise Inflate3dError(_not_corresponding(l3, to2, unplaced, origin, source))
    return matches


def _likeness(a: Layer, b: Layer) -> int:
    return (a.kind == b.kind) * 4 + (a.out_channels == b.out_channels) * 2 + (a.kernel == b.kernel)


def _not_corresponding(l3: list[Layer], to2: dict[int, int], unplaced: list[Layer], origin: str,
                       source: str) -> str:
    """Name the first 3D layer that stands where an unplaced 2D layer should be (the most alike of
    those reading the same inputs), and why it differs."""
    def mapped(a: Layer) -> frozenset[int]:
        return frozenset(p if p == INPUT else to2[p] for p in a.preds if p == INPUT or p in to2)

    b = unplaced[0]
    unmatched = [a for a in l3 if a.index not in to2]
    in_place = [a for a in unmatched if mapped(a) == b.preds] or \
        [a for a in unmatched if mapped(a) & b.preds]
    where = f"{source}'s {b.name} ({b.signature}) has no counterpart"
    if in_place:
        a = in_place[0]
        rivals = [c for c in unplaced if c.preds == b.preds]
        b = max(rivals, key=lambda c: _likeness(a, c)) if rivals else b
        why = mismatch(a, b) or "its inputs come from other layers"
        return (f"{origin}: does not correspond to {source}: {a.name} ({a.signature}) is the first layer "
                f"that does not match: it stands where {b.name} ({b.signature}) should be but has {why}"
                if mismatch(a, b) else
                f"{origin}: does not correspond to {source}: {a.name} ({a.signature}) is the first layer "
                f"that does not match: it stands where {b.name} should be but {why}")
    return f"{origin}: does not correspond to {source}: {where} (no layer of the model reads its inputs)"
