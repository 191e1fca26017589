"""The layer graph of any network: its conv / norm / linear layers in forward order, and for each
the layers whose outputs reach its input (through activations, pools, adds and concatenations).

A meta-device forward (no weight allocated, no arithmetic done) with hooks on the layers and a
``TorchFunctionMode`` that carries, for every intermediate tensor, the set of nearest layers it was
computed from. Works on models that ``torch.fx`` cannot trace (pytorchvideo's SlowFast asserts on
its list input); needs only an input shape.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from ...errors import Inflate3dError

INPUT = -1  # the "layer" that produces the model's input


def layer_kind(m: nn.Module) -> str | None:
    if isinstance(m, (nn.Conv2d, nn.Conv3d)):
        return "conv"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "batchnorm"
    if isinstance(m, nn.GroupNorm):
        return "groupnorm"
    if isinstance(m, nn.Linear):
        return "linear"
    return None


@dataclass(frozen=True)
class Layer:
    index: int  # position in forward order
    name: str  # module path in its network
    kind: str  # conv | batchnorm | groupnorm | linear
    out_channels: int
    in_channels: int
    kernel: tuple[int, ...] = ()  # spatial (kH, kW) of a conv
    temporal: int = 1  # temporal kernel (3D convs)
    stride: tuple[int, ...] = ()  # spatial
    padding: tuple[int, ...] | str = ()  # spatial, or 'same' / 'valid'
    dilation: tuple[int, ...] = ()  # spatial
    groups: int = 1
    preds: frozenset[int] = frozenset()  # layers (or INPUT) whose outputs reach this one's input

    @property
    def signature(self) -> str:
        if self.kind == "conv":
            t = f"{self.temporal}x" if self.temporal > 1 else ""
            return f"conv {self.in_channels}->{self.out_channels} {t}{'x'.join(map(str, self.kernel))}"
        if self.kind == "linear":
            return f"linear {self.in_channels}->{self.out_channels}"
        return f"{self.kind} {self.out_channels}"


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _describe(index: int, name: str, m: nn.Module, preds: frozenset[int]) -> Layer:
    """The layer's geometry as plain ints (pytorchvideo builds some widths as numpy integers)."""
    kind = layer_kind(m)
    if kind == "conv":
        spatial = slice(-2, None)
        t = int(m.kernel_size[0]) if isinstance(m, nn.Conv3d) else 1
        padding = m.padding if isinstance(m.padding, str) else _ints(m.padding[spatial])  # 'same' / 'valid'
        return Layer(index, name, kind, int(m.out_channels), int(m.in_channels), _ints(m.kernel_size[spatial]),
                     t, _ints(m.stride[spatial]), padding, _ints(m.dilation[spatial]), int(m.groups), preds)
    if kind == "linear":
        return Layer(index, name, kind, int(m.out_features), int(m.in_features), preds=preds)
    channels = int(m.num_features if kind == "batchnorm" else m.num_channels)
    return Layer(index, name, kind, channels, channels, preds=preds)


def meta_clone(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters and buffers live on the meta device: the original
    is never touched and no weight is copied."""
    memo: dict[int, object] = {}
    for t in itertools.chain(module.parameters(), module.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(meta, t.requires_grad) if isinstance(t, nn.Parameter) else meta
    return copy.deepcopy(module, memo)


class _Provenance(TorchFunctionMode):
    """Every tensor an op returns is computed from the union of its inputs' layers."""

    def __init__(self) -> None:
        super().__init__()
        self.of: dict[int, tuple[torch.Tensor, frozenset[int]]] = {}  # id -> (tensor kept alive, layers)

    def get(self, tree) -> frozenset[int]:
        out: frozenset[int] = frozenset()
        for leaf in tree_leaves(tree):
            if isinstance(leaf, torch.Tensor) and id(leaf) in self.of:
                out |= self.of[id(leaf)][1]
        return out

    def set(self, tree, layers: frozenset[int]) -> None:
        for leaf in tree_leaves(tree):
            if isinstance(leaf, torch.Tensor):
                self.of[id(leaf)] = (leaf, layers)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        sources = self.get((args, kwargs))
        if sources:
            self.set(out, sources)
        return out


def trace_layers(module: nn.Module, inputs, *, origin: str) -> list[Layer]:
    """The layers of ``module`` in the order its forward first calls them, on meta tensors of the
    shapes of ``inputs`` (a tensor, or a list of tensors for multi-pathway models)."""
    net = meta_clone(module).eval()
    names = {id(m): n for n, m in net.named_modules() if layer_kind(m)}
    mode = _Provenance()
    layers: list[Layer] = []
    index_of: dict[int, int] = {}
    pending: dict[int, frozenset[int]] = {}

    def pre(m, args, kwargs):
        pending[id(m)] = mode.get((args, kwargs))

    def post(m, args, kwargs, out):
        if id(m) not in index_of:
            index_of[id(m)] = len(layers)
            layers.append(_describe(len(layers), names[id(m)], m, pending[id(m)]))
        mode.set(out, frozenset({index_of[id(m)]}))

    handles = []
    for m in net.modules():
        if id(m) in names:
            handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(m.register_forward_hook(post, with_kwargs=True))
    meta_inputs = _to_meta(inputs)
    try:
        with torch.no_grad(), mode:
            mode.set(meta_inputs, frozenset({INPUT}))
            net(meta_inputs)
    except Exception as e:  # any failure of the user's forward: say which input was tried
        raise Inflate3dError(f"{origin}: its forward failed on a meta-device input of shape "
                             f"{shapes_of(inputs)} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                             "pass the input shape it expects") from None
    finally:
        for h in handles:
            h.remove()
    if not layers:
        raise Inflate3dError(f"{origin}: its forward calls no conv, norm or linear layer")
    return layers


def _to_meta(inputs):
    if isinstance(inputs, torch.Tensor):
        return torch.empty(inputs.shape, dtype=inputs.dtype, device="meta")
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (int, torch.SymInt)):
        return torch.empty(tuple(inputs), device="meta")  # a shape
    if isinstance(inputs, (list, tuple)):
        return [_to_meta(x) for x in inputs]
    raise Inflate3dError(f"an input must be a tensor, a shape or a list of them, not {type(inputs).__name__}")


def shapes_of(inputs) -> list | tuple:
    if isinstance(inputs, torch.Tensor):
        return tuple(inputs.shape)
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], int):
        return tuple(inputs)
    return [shapes_of(x) for x in inputs]


def first_conv_channels(module: nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            return m.in_channels
    return 3


def candidate_inputs(module: nn.Module, size: int = 224) -> list[Sequence]:
    """Input shapes to try when the caller gives none: one clip, then a (slow, fast) pair of
    clips with the usual SlowFast frame ratios. Only the forward's success is used (the layer
    order and data flow), never a value, so trying a shape guesses nothing about the weights."""
    c = first_conv_channels(module)
    clip = lambda t: (1, c, t, size, size)  # noqa: E731
    return [clip(8), clip(16), clip(32), [clip(8), clip(32)], [clip(4), clip(32)], [clip(8), clip(16)],
            [clip(2), clip(16)]]


def trace_any(module: nn.Module, inputs, *, origin: str) -> tuple[list[Layer], object]:
    """``trace_layers`` with the given input shape, or the first of ``candidate_inputs`` that runs."""
    if inputs is not None:
        return trace_layers(module, inputs, origin=origin), shapes_of(inputs)
    errors = []
    for shape in candidate_inputs(module):
        try:
            return trace_layers(module, shape, origin=origin), shape
        except Inflate3dError as e:
            errors.append(str(e))
    raise Inflate3dError(f"{origin}: its forward ran on none of the usual clip shapes "
                         f"({'; '.join(str(s) for s in candidate_inputs(module))}); pass the input "
                         "shape it expects (input_shape=..., --input-shape)")
