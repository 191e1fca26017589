"""``diff --inflated A B``: a 3D checkpoint against the 2D ResNet it was inflated from.

Each 3D tensor is taken back to 2D by the inverse of its inflation (sum over time for ``mean``,
the centre tap for ``center``; the method is read off each kernel), its zero-padded lateral input
channels are checked separately, and the result is compared with the 2D tensor. Tensors without a
2D source (fast pathway, laterals, a new head) are listed as such. Per stage: still exactly the
inflation, or how far training moved the weights.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch

from ..errors import Inflate3dError, InvalidInputError
from ..inflate.convert import fill_bn_counters, match_arch
from ..inflate.detect import infer_arch
from ..inflate.kernels import deflate_kernel, inflate_kernel, kernel_method
from ..inflate.mapping import FRESH, plan_inflation
from ..inflate.resnet2d import infer_depth
from ..io.lazy import TensorFile
from ..slowfast.archs import build_model
from .metrics import CHUNK, Moved
from .views import NativeView, group_of


@dataclass
class InflatedTensor:
    key: str
    source: str
    method: str  # 'mean' | 'center' | 'copy' (no temporal extent)
    exact: bool  # bit-equal to inflating the 2D tensor with that method
    max_abs: float  # |deflated 3D - 2D|
    rel_change: float  # ||deflated 3D - 2D|| / ||2D||
    pad_zero: bool | None  # lateral input channels still zero (None: no padding)


@dataclass
class StageReport:
    tensors: int = 0
    exact: int = 0
    max_rel_change: float = 0.0
    methods: set[str] = field(default_factory=set)
    padding_moved: int = 0


@dataclass
class InflatedDiff:
    arch: str
    tensors: list[InflatedTensor] = field(default_factory=list)
    no_source: list[str] = field(default_factory=list)
    stages: dict[str, StageReport] = field(default_factory=dict)
    unused_2d: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    three_d: str = ""  # the paths, in their roles (the arguments may come in either order)
    two_d: str = ""

    def add(self, t: InflatedTensor, group: str) -> None:
        """Record one compared tensor, and roll it up into its stage."""
        self.tensors.append(t)
        stage = self.stages.setdefault(group, StageReport())
        stage.tensors += 1
        stage.exact += t.exact
        stage.max_rel_change = max(stage.max_rel_change, t.rel_change)
        stage.methods.add(t.method)
        stage.padding_moved += t.pad_zero is False

    @property
    def exact(self) -> bool:
        return all(t.exact for t in self.tensors)

    def to_compare(self, entries, pattern) -> Iterator:
        """The plan's entries to compare, in order: those the key ``pattern`` selects (every one
        without a pattern), less those with no 2D source, which go to ``no_source``. Every family's
        ``diff --inflated`` walks its plan through this."""
        for e in entries:
            if pattern is not None and not pattern.search(e.key):
                continue
            if e.action == FRESH:
                self.no_source.append(e.key)
                continue
            yield e

    def compared(self, a_path, b_path, keys: str | None) -> InflatedDiff:
        """This diff, once it compared a tensor; else the error that says why none was (a diff of
        nothing would call the file exactly its inflation)."""
        if not self.tensors and keys is not None:
            raise InvalidInputError(f"key pattern {keys!r} matches no tensor of {a_path} that has a 2D source")
        if not self.tensors:
            raise Inflate3dError(f"{a_path}: no tensor has a counterpart in {b_path}")
        return self


def diff_inflated(a_path, b_path, *, keys: str | None = None, trust_pickle: bool = False) -> InflatedDiff:
    """Compare a 3D checkpoint with the 2D ResNet it was inflated from; the two may come in
    either order (the 2D one is told by its 4-D kernels and torchvision names). Each file is read
    once, one tensor pair at a time; either path may be an open ``TensorFile`` (left open)."""
    from .checkpoints import key_pattern, open_input

    pattern = key_pattern(keys)
    with ExitStack() as opened:
        fa, fb = (open_input(p, trust_pickle, opened) for p in (a_path, b_path))
        return _diff_inflated(fa, fb, keys=keys, pattern=pattern)


def _diff_inflated(fa: TensorFile, fb: TensorFile, *, keys: str | None, pattern) -> InflatedDiff:
    from .checkpoints import two_d_of

    a_path, b_path = fa.origin, fb.origin
    swapped = bool(two_d_of(fa)) and not two_d_of(fb)
    if swapped:
        a_path, b_path, fa, fb = b_path, a_path, fb, fa
    a_file = fa
    view = NativeView(fa)
    src = fb
    shapes2d = {k: torch.empty(src.shape(k), device="meta") for k in src.keys()}
    infer_depth(shapes2d, str(b_path))
    shapes3d = {k: torch.empty(view.shape(k), device="meta") for k in view.keys()}
    unstored = fill_bn_counters(shapes3d) if view.scheme == "caffe2" else []  # Caffe2 keeps no BN counters
    info = infer_arch(shapes3d, str(a_path))
    arch, overrides = match_arch(shapes3d, info, str(a_path))
    model = build_model(arch, num_classes=info.num_classes, device="meta", init=False, **overrides)
    same_count = info.num_classes is not None and "fc.weight" in shapes2d and \
        src.shape("fc.weight")[0] == info.num_classes
    recorded = a_file.metadata.get("head")  # the inflation's own record: a fresh head may share the count
    head_from_2d = recorded == "imagenet" if recorded is not None else same_count
    plan = plan_inflation(model, shapes2d, head_from_2d=head_from_2d, origin=str(b_path))
    result = InflatedDiff(arch.name, unused_2d=plan.unused, notes=list(view.notes))
    result.three_d, result.two_d = str(a_path), str(b_path)
    if swapped:
        result.notes.insert(0, f"{b_path} is the 2D source and {a_path} the 3D checkpoint: compared that way round")
    if recorded is None and same_count:
        result.notes.append("no recorded head choice: the head has the 2D class count, so it is compared "
                            "with the 2D fc (a fresh head of that size would show as moved)")
    result.notes += [f"{note}: not compared" for note in unstored]
    for e in result.to_compare(plan.entries, pattern):
        if e.key.endswith("num_batches_tracked") and unstored:
            continue  # not in the file: nothing to compare
        w3d, w2d = view.get(e.key), src.get(e.source)
        result.add(_compare(e, w3d, w2d), group_of(e.key))
    return result.compared(a_path, b_path, keys)


def _compare(e, w3d: torch.Tensor, w2d: torch.Tensor, *, chunk: int = CHUNK) -> InflatedTensor:
    """Deflate ``w3d`` and compare it with ``w2d`` over slices of output channels (at most ``chunk``
    values, at least one channel): the float64 work and the re-inflated kernel live one slice at a time."""
    pad_zero = None
    if w3d.dim() == 5:
        core = w3d[:, : w2d.shape[1]]
        if e.pad:
            pad_zero = not bool(w3d[:, w2d.shape[1]:].any())
        method = "copy" if core.shape[2] == 1 else "center"
        for rows in _row_slices(core, chunk):
            if method == "center" and kernel_method(core[rows]) == "mean":
                method = "mean"  # off-centre taps in use: anything but a centre inflation reads as 'mean'
        redo, back_by = ("mean" if method == "copy" else method), ("center" if method == "center" else "mean")
    elif w3d.dim() == 2 and e.pad:  # a SlowFast head kept from the 2D fc: fast columns first
        pad_zero = not bool(w3d[:, : e.pad].any())
        core, method = w3d[:, e.pad:], "copy"
    else:
        core, method = w3d, "copy"
    exact, moved = True, Moved()
    if core.dim() == 0:
        core, w2d = core.reshape(1), w2d.reshape(1)
    for rows in _row_slices(core, chunk):
        c, old = core[rows], w2d[rows]
        if core.dim() == 5:
            exact = exact and bool(torch.equal(c, inflate_kernel(old.to(c.dtype), c.shape[2], redo)))
            moved.add(deflate_kernel(c.to(torch.float64), back_by), old, chunk=chunk)
        else:
            exact = exact and bool(torch.equal(c, old.to(c.dtype)))
            moved.add(c, old, chunk=chunk)
    exact = exact and pad_zero is not False
    return InflatedTensor(e.key, e.source, method, exact, moved.max_abs, moved.rel_change, pad_zero)


def _row_slices(t: torch.Tensor, chunk: int) -> list[slice]:
    """Slices of dim 0 holding at most ``chunk`` values each (one row when a row is larger)."""
    per_row = max(1, t[0].numel()) if t.shape[0] else 1
    step = max(1, chunk // per_row)
    return [slice(i, i + step) for i in range(0, t.shape[0], step)]
