"""``diff A B``: keys only on one side, shape and dtype mismatches, and for common keys how far
apart the values are; streamed one tensor pair at a time."""
from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from ..io.lazy import TensorFile
from .metrics import TensorDiff, compare
from .views import NativeView, group_of


@dataclass
class Group:
    tensors: int = 0
    differing: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0


@dataclass
class DiffResult:
    schemes: tuple[str, str]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    dtype_mismatch: list[tuple[str, str, str]] = field(default_factory=list)
    diffs: list[TensorDiff] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def differing(self) -> list[TensorDiff]:
        return [d for d in self.diffs if not d.equal]

    @property
    def equal(self) -> bool:
        return not (self.only_a or self.only_b or self.shape_mismatch or self.dtype_mismatch or self.differing)

    def worst(self, n: int) -> list[TensorDiff]:
        return sorted(self.diffs, key=lambda d: (d.max_rel, d.max_abs), reverse=True)[:n]


def key_pattern(keys: str | None) -> re.Pattern | None:
    """The compiled key filter; a malformed regex is an ``InvalidInputError``."""
    if keys is None:
        return None
    try:
        return re.compile(keys)
    except re.error as e:
        raise InvalidInputError(f"key pattern {keys!r} is not a regular expression ({e})") from None


def two_d_of(tf: TensorFile) -> str | None:
    """'ResNet-18 (torchvision names)' when the file is a 2D ResNet, read from shapes alone."""
    import torch

    from ..inflate.resnet2d import describe_2d

    if "conv1.weight" not in tf.keys():
        return None
    return describe_2d({k: torch.empty(tf.shape(k), device="meta") for k in tf.keys()})


def diff_checkpoints(a_path, b_path, *, atol: float = 0.0, rtol: float = 0.0, keys: str | None = None,
                     trust_pickle: bool = False) -> DiffResult:
    """Compare two checkpoints tensor by tensor, through the native names when their schemes
    differ, each file read once, one tensor pair at a time (either path may be an open
    ``TensorFile``: read through, and left open). ``keys`` (a regex on native names) restricts the
    comparison and must match a key. A 3D checkpoint against a 2D ResNet is an error: compare those
    with ``diff_inflated``."""
    if atol < 0 or rtol < 0:
        raise InvalidInputError(f"tolerances must be >= 0 (atol {atol}, rtol {rtol})")
    pattern = key_pattern(keys)
    with ExitStack() as opened:
        fa, fb = (open_input(p, trust_pickle, opened) for p in (a_path, b_path))
        return _diff(fa, fb, atol=atol, rtol=rtol, keys=keys, pattern=pattern)


def open_input(src, trust_pickle: bool, opened: ExitStack) -> TensorFile:
    """``src`` if it is an open ``TensorFile`` (the caller's to close), else the file opened here."""
    tf = TensorFile.of(src, trust_pickle=trust_pickle)
    if tf is not src:
        opened.enter_context(tf)
    return tf


def _diff(fa: TensorFile, fb: TensorFile, *, atol: float, rtol: float, keys: str | None,
          pattern: re.Pattern | None) -> DiffResult:
    a_path, b_path = fa.origin, fb.origin
    two_d = two_d_of(fa), two_d_of(fb)
    if bool(two_d[0]) != bool(two_d[1]):
        three, flat = (a_path, b_path) if two_d[1] else (b_path, a_path)
        raise InvalidInputError(f"{flat} is a 2D {two_d[0] or two_d[1]} and {three} is not: to compare a 3D "
                                "checkpoint with the 2D ResNet it was inflated from, compare across the "
                                "inflation (diff_inflated)", details={"two_d": str(flat)})
    va, vb = NativeView(fa, native=False), NativeView(fb, native=False)
    if set(va.keys()) != set(vb.keys()):  # different names: compare through the native names
        va, vb = NativeView(fa), NativeView(fb)
    result = DiffResult((va.scheme, vb.scheme), notes=va.notes + vb.notes)
    if "caffe2" in (va.scheme, vb.scheme) and va.scheme != vb.scheme:
        result.notes.append("num_batches_tracked not compared: Caffe2 does not store it")

    def wanted(k: str) -> bool:
        if "caffe2" in result.schemes and result.schemes[0] != result.schemes[1] and k.endswith("num_batches_tracked"):
            return False
        return pattern is None or bool(pattern.search(k))

    a_keys = [k for k in va.keys() if wanted(k)]
    b_set = {k for k in vb.keys() if wanted(k)}
    if pattern is not None and not a_keys and not b_set:
        example = next(iter(va.keys()), "")
        raise InvalidInputError(f"key pattern {keys!r} matches none of the keys of {a_path} or {b_path} "
                                f"(native names, e.g. {example})")
    result.only_a = [k for k in a_keys if k not in b_set]
    a_set = set(a_keys)
    result.only_b = [k for k in vb.keys() if k in b_set and k not in a_set]
    for k in a_keys:
        if k not in b_set:
            continue
        sa, sb = va.shape(k), vb.shape(k)
        if sa != sb:
            result.shape_mismatch.append((k, sa, sb))
            continue
        da, db = va.dtype(k), vb.dtype(k)
        if da != db:
            result.dtype_mismatch.append((k, str(da).replace("torch.", ""), str(db).replace("torch.", "")))
        d = compare(k, va.get(k), vb.get(k), atol=atol, rtol=rtol)  # one pair in memory at a time
        result.diffs.append(d)
        g = result.groups.setdefault(group_of(k), Group())
        g.tensors += 1
        g.differing += not d.equal
        g.max_abs, g.max_rel = max(g.max_abs, d.max_abs), max(g.max_rel, d.max_rel)
    return result
