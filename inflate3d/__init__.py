"""inflate3d: 2D image ResNets into 3D video networks, and video checkpoints between codebases.

The public API, each a plain function returning plain objects::

    import inflate3d
    result = inflate3d.inflate("resnet50.pth", "slowfast_r50_8x8")      # state dict + report
    model = inflate3d.build_model("slowfast_r50_8x8")
    model.load_state_dict(result.state_dict)                           # strict

``build_model``, ``load_model``, ``inflate``, ``inflate_into``, ``convert``, ``diff``, ``verify``,
``inspect``; errors are
``inflate3d.errors.Inflate3dError`` subclasses that are also ``ValueError``, ``KeyError`` or
``FileNotFoundError``. Importing the package is cheap: torch is imported by the first call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import Inflate3dError

if TYPE_CHECKING:  # for readers and type checkers only: nothing heavy at import time
    from .diff import DiffResult, InflatedDiff
    from .inflate.convert import Conversion
    from .inflate.inflater import InflationResult
    from .slowfast.recognizer import Recognizer3D
    from .verify import Verification

__version__ = "0.1.0"


def build_model(name: str, *, num_classes: int | str | None = 400, device: Any = None, init: bool = True,
                pretrained2d: Any = None, method: str = "mean", **settings: Any) -> Recognizer3D:
    """Build the named architecture (see ``inflate3d archs``) as an mmaction2-style
    ``Recognizer3D``: the same module names, state-dict keys and shapes as mmaction2's.

    - ``num_classes``: classes of a fresh head; ``None`` for a backbone-only model.
    - ``device='meta'``: shapes and keys only, no memory; ``init=False`` skips the init.
    - ``settings``: architecture settings on top of the named ones, e.g. ``speed_ratio=4``,
      ``slow_pathway={'lateral_norm': True}`` (PySlowFast / pytorchvideo fusion), head settings
      such as ``dropout_ratio=0.0``. A lateral setting given bare (``lateral_norm=True``) goes to
      the pathway that has the laterals. An unknown setting raises ``KeyError`` (an
      ``Inflate3dError``) saying where it belongs; settings that do not form a network raise
      ``ValueError``.
    - ``pretrained2d``: bootstrap it from 2D weights in one line (a file, ``torchvision:resnet50``,
      ``seeded:resnet50:SEED``, a state dict or a 2D module), inflated with ``method`` by the
      engine of ``inflate3d inflate`` and loaded strictly; ``num_classes='imagenet'`` then keeps
      the 2D classifier.

    >>> model = build_model("slowfast_r50_8x8", num_classes=174)
    >>> shapes = build_model("slowfast_r101_8x8", device="meta")
    >>> i3d = build_model("i3d_r50", pretrained2d="seeded:resnet50:0")
    """
    if pretrained2d is not None:
        from .inflate.inflater import build_inflated

        return build_inflated(name, pretrained2d, method=method, num_classes=num_classes, **settings)
    from .slowfast.archs import build_model as _build

    return _build(name, num_classes=num_classes, device=device, init=init, **settings)


def inflate(source: Any, arch: str = "slowfast_r50_4x16", *, method: str = "mean",
            head: str | int | None = 400, seed: int = 0, settings: dict | None = None,
            verify: bool = False, trust_pickle: bool = False) -> InflationResult:
    """Inflate a 2D torchvision ResNet into ``arch`` in one call.

    - ``source``: a file path (``str`` or ``Path``), a state dict, a torchvision ``nn.Module``,
      ``'torchvision:resnet50'`` (torch hub cache) or ``'seeded:resnet50:0'``. Its depth is read
      from the weights and must be the arch's.
    - ``method``: ``'mean'`` (I3D: ``w/T`` on each of the T taps) or ``'center'`` (``'centre'``).
    - ``head``: ``400`` by default (a fresh head, as ``build_model``'s default, so that
      ``build_model(arch).load_state_dict(inflate(src, arch).state_dict)`` is strict),
      another number of classes, ``'imagenet'`` (keep the 2D classifier) or ``None`` (backbone
      only: load with ``build_model(arch, num_classes=None)``).
    - ``settings``: arch settings, as in ``build_model`` (``{'slow_pathway': {'lateral_norm': True}}``).
    - ``verify=True`` also runs the strict load and the boring-video check (``result.verification``).

    Returns an ``InflationResult``: ``state_dict`` (mmaction2 names), ``report`` (where every
    tensor comes from), ``metadata`` (provenance, as written into files), ``arch``, ``settings``,
    ``verification``.
    """
    from .inflate.inflater import inflate as _inflate

    return _inflate(source, arch, method=method, head=head, seed=seed, settings=settings,
                    verify=verify, trust_pickle=trust_pickle)


def convert(checkpoint: Any, *, to: str = "mmaction2", source_scheme: str | None = None,
            arch: str | None = None, settings: dict | None = None, trust_pickle: bool = False) -> Conversion:
    """Rename a video checkpoint between codebases (mmaction2, pyslowfast, caffe2, pytorchvideo,
    torchvision3d, tsm, torchvision) through the native mmaction2 names, checked against the
    architecture its keys and shapes imply (or ``arch`` plus ``settings``).

    ``checkpoint`` is a path or a state dict. Returns a ``Conversion``: ``tensors`` (in the
    target's names), ``key_map`` ``[(source, native, target)]``, ``arch_name``,
    ``arch_overrides``, ``notes`` (head columns reordered, entries dropped). Nothing is written.
    """
    from .inflate.convert import convert as _convert

    tensors, origin, _ = _load(checkpoint, trust_pickle)
    return _convert(tensors, source=source_scheme, target=to, origin=origin, arch=arch, settings=settings)


def diff(a: Any, b: Any, *, atol: float = 0.0, rtol: float = 0.0, keys: str | None = None,
         inflated: bool = False, trust_pickle: bool = False) -> DiffResult | InflatedDiff:
    """Compare two checkpoint files tensor by tensor, across naming schemes (``DiffResult``:
    ``equal``, ``only_a``, ``only_b``, ``shape_mismatch``, ``diffs``, ``groups``), reading one
    tensor pair at a time. ``keys`` is a regex on native names and must match some key.

    With ``inflated=True``, one file is a 3D checkpoint and the other the 2D ResNet it was
    inflated from, in either order (``InflatedDiff``: ``exact``, per-stage ``stages``, how far
    training moved each tensor from its inflation).
    """
    if inflated:
        from .diff import diff_inflated

        return diff_inflated(a, b, keys=keys, trust_pickle=trust_pickle)
    from .diff import diff_checkpoints

    return diff_checkpoints(a, b, atol=atol, rtol=rtol, keys=keys, trust_pickle=trust_pickle)


def verify(checkpoint: Any, source: Any, *, arch: str | None = None, method: str | None = None,
           settings: dict | None = None, size: int = 32, trust_pickle: bool = False) -> Verification:
    """Check an inflated checkpoint against its 2D source: strict load into the architecture,
    then the boring-video equivalence stage by stage. ``checkpoint`` is a path or a state dict
    in any scheme; the arch and its settings come from ``arch``/``settings``, else the file's
    metadata, else its keys and shapes. Returns a ``Verification`` (``passed``, ``checks``,
    ``notes``); a failed check is ``passed=False``, not an exception.
    """
    from .verify.api import verify_checkpoint

    tensors, origin, meta = _load(checkpoint, trust_pickle)
    return verify_checkpoint(tensors, source, origin=origin, metadata=meta, arch=arch, method=method,
                             settings=settings, size=size, trust_pickle=trust_pickle)


def inspect(checkpoint: Any, *, source_scheme: str | None = None, trust_pickle: bool = False,
            values: bool = False) -> dict:
    """Describe a checkpoint file as a plain dict: format, container, scheme, tensor count,
    parameters, values by dtype, size, metadata, and for a 3D net the architecture its keys and
    shapes imply (the named arch and the settings it needs); for a 2D ResNet, ``two_d`` says
    which. Only the structure is read (``read: 'structure'``, no torch import for safetensors,
    torch zips and Caffe2 pickles); ``values=True`` loads every tensor and lists those holding
    NaN or Inf in ``non_finite``."""
    from .inflate.describe import describe_checkpoint

    return describe_checkpoint(checkpoint, source_scheme=source_scheme, trust_pickle=trust_pickle, values=values)


def _load(checkpoint: Any, trust_pickle: bool) -> tuple[dict, str, dict]:
    """(tensors, origin for messages, metadata) of a path or an in-memory state dict."""
    from collections.abc import Mapping

    if isinstance(checkpoint, Mapping):
        return dict(checkpoint), "state dict", {}
    from .io.load import load_checkpoint

    ckpt = load_checkpoint(checkpoint, trust_pickle=trust_pickle)
    return ckpt.tensors, str(checkpoint), ckpt.metadata


def inflate_into(model: Any, source: Any, *, method: str = "mean", strict: bool = False, **kwargs: Any):
    """Inflate 2D ResNet weights into any 3D model whose layer graph corresponds (aligned by
    structure, not names), in place; returns the report of where every tensor came from. See
    :func:`inflate3d.inflate.into.inflate_into` for ``hints``, ``input_shape`` and the proof."""
    from .inflate.into import inflate_into as _into

    return _into(model, source, method=method, strict=strict, **kwargs)


def load_model(path: Any, **kwargs: Any):
    """Any checkpoint (any scheme, any registered family) -> its network, loaded strictly, in
    eval mode; the architecture from the file's record, else its keys and shapes. See
    :func:`inflate3d.inflate.load_model.load_model`."""
    from .inflate.load_model import load_model as _load_model

    return _load_model(path, **kwargs)


__all__ = ["Inflate3dError", "__version__", "build_model", "convert", "diff", "inflate", "inflate_into",
           "inspect", "load_model", "verify"]


def _keep_public_functions() -> None:
    """``inflate3d.inflate``, ``.diff`` and ``.verify`` stay the functions above: importing the
    subpackages of the same names (``inflate3d.inflate.sources``, ...) would otherwise rebind
    those attributes to the subpackages. The subpackages stay importable by their full names."""
    import sys
    import types

    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in ("inflate", "diff", "verify") and isinstance(value, types.ModuleType):
                return
            super().__setattr__(name, value)

    sys.modules[__name__].__class__ = _Package


_keep_public_functions()
