"""Model families: the one interface through which the commands ask a family for its parts.

A family other than the ResNet one (I3D, Slow-only, SlowFast, TSM and the ResNet zoo, served by the
built-in paths of ``inflate/``, ``verify/`` and ``diff/``) is a package beside ``slowfast/`` -- for
example ``swin/``, ``vit/``, ``x3d/`` -- whose ``family`` module provides the hooks of
:class:`FamilyHooks` as module-level names. Importing that module registers the family's named
architectures (``slowfast.archs.register``) and its network builder (``register_builder``).

The core never imports a family package directly: it asks the functions below, so adding a family
touches its own package and one line of ``FAMILY_PACKAGES``. Hooks return the same plain objects the
ResNet path returns (``Inflation``-like, ``Verification``, ``Conversion``-like, ``InflatedDiff``), so
the commands render every family alike. A family without a capability leaves the hook out; asking
for it is then a one-line error that says so.

This module is torch-free: the registry costs nothing until a family is asked for.
"""
from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from types import ModuleType
from typing import Any, Protocol

# One line per family package; each has a ``family`` module implementing FamilyHooks.
FAMILY_PACKAGES: tuple[str, ...] = ("inflate3d.x3d", "inflate3d.swin", "inflate3d.vit")

_LOADED: dict[str, ModuleType] = {}


class FamilyHooks(Protocol):
    """What a family module provides (module-level). Only ``NAME`` and ``ARCH_FAMILIES`` are required.

    - ``NAME``: the family's name (``'swin'``); ``ARCH_FAMILIES``: the ``Arch.family`` values it owns;
      ``SCHEMES``: the naming schemes it converts between, the native (mmaction2) one first.
    - ``prepare(source, arch, *, method, head, seed, trust_pickle)``: resolve the 2D ``source`` spec
      (path, or a family-specific spec; ``None`` for the family default) and plan the inflation into
      ``arch``. Returns an object with ``arch, method, head, seed, source`` (``label, kind, sha256,
      description, path, tensors``), ``plan`` (``entries`` of ``key, shape, action, source, pad``;
      ``unused``; ``fresh_units``; ``by_action()``), ``specs()``, ``tensors()``, ``state_dict()`` and
      ``metadata()``.
    - ``verify(tensors, arch, source, *, method, origin, size, metadata, trust_pickle=False)``: strict
      load and the family's static-clip proof; ``source`` is a spec (``verify --against``) or the
      source object ``prepare`` returned (``inflate``). Returns ``inflate3d.verify.Verification``.
    - ``detect_scheme(keys)``: the scheme name when the keys are this family's, else ``None``; it
      lives in the package's torch-free ``detect`` module (``families.detect`` imports only that).
    - ``read_as(scheme, *, source, config, arch)`` (optional): the scheme to read keys that
      ``detect_scheme`` calls ``scheme`` as, given ``--from``, the file's training config (``cfg``)
      and the architecture named (``--arch`` or the file's metadata): the names alone cannot tell
      a space-only TimeSformer from the ViT it runs on every frame.
    - ``convert(tensors, *, source, target, origin, arch, config, metadata, settings)``: like
      ``inflate.convert.convert`` (``arch``: the user's ``--arch``, else the one the file's metadata
      records; ``config``, ``metadata``: the training config and the metadata the file carries, or
      None; ``settings``: what ``--set`` states, honoured or refused, never ignored). The result may
      carry ``round_trip_in_function(expected, back, differ) -> str``: the proof for tensors that a
      structural step keeps equal in function but not in bits (X3D's shortcut-BN fold); it raises
      ``Inflate3dError`` when they are not.
    - ``shapes(arch_name, num_classes, overrides)``: the native state-dict shapes (strict checks).
    - ``native_names(keys, scheme, origin)``: {native key: file key} (``diff`` across schemes).
    - ``diff_inflated(a_path, b_path, *, keys, trust_pickle)``: like ``diff.diff_inflated``; ``a_path`` may
      be an open ``TensorFile`` (the command's: read through one tensor at a time, left open).
    - ``describe(tensors, scheme, origin, *, prefix, config, metadata, settings)``: a dict for
      ``inspect`` (``family``, ``matches``, facts); what the file records beside its names:
      ``prefix``, the wrapper the loader took off every name (``model.``), ``config``, its training
      config, ``metadata`` (each None where it has none); ``settings``: as for ``convert``.
    - ``check_folder(out, force)`` and ``write_folder(out, conversion_or_inflation, meta, force)``:
      outputs that are folders (``--to huggingface``); the writer proves the folder and returns the
      proof lines. Inflations may carry ``notes`` (what the source did not record and was assumed).
    """

    NAME: str
    ARCH_FAMILIES: tuple[str, ...]


def load_all() -> list[ModuleType]:
    """Import every family module once (each registers its archs and builder)."""
    for package in FAMILY_PACKAGES:
        if package not in _LOADED:
            _LOADED[package] = import_module(f"{package}.family")
    return list(_LOADED.values())


# The Arch.family values of the built-in ResNet archs (``slowfast.archs``), served by no family
# module: asking for one of them imports no family package.
BUILTIN_ARCH_FAMILIES = frozenset({"resnet3d", "slowfast", "tsm", "r2plus1d", "csn"})


def for_arch(arch: Any) -> ModuleType | None:
    """The family module that owns ``arch`` (an ``Arch`` or its ``family`` string); ``None`` for the
    ResNet family, which the built-in paths serve (without importing any family package)."""
    family = arch if isinstance(arch, str) else arch.family
    if family in BUILTIN_ARCH_FAMILIES:
        return None
    return next((m for m in load_all() if family in m.ARCH_FAMILIES), None)


def detect(keys: Iterable[str]) -> tuple[str, str] | None:
    """(family package, scheme) for keys a registered family recognises, else None. Torch-free:
    it asks each package's ``detect`` module, not the family module (which imports the networks)."""
    keys = list(keys)
    for package in FAMILY_PACKAGES:
        scheme = import_module(f"{package}.detect").detect_scheme(keys)
        if scheme is not None:
            return package, scheme
    return None


def for_keys(keys: Iterable[str]) -> tuple[ModuleType, str] | None:
    """(family module, scheme) for a checkpoint whose keys a registered family recognises. The
    family modules are imported only when one does (they import torch only where they build or
    compute)."""
    hit = detect(keys)
    if hit is None:
        return None
    load_all()  # every family registers its archs: a family's hooks may look at the others' names
    return _LOADED[hit[0]], hit[1]


# The ResNet family's scheme names. A family may share one (X3D has mmaction2, pyslowfast and
# pytorchvideo names too): its checkpoints are then found by their keys, never by the name alone.
RESNET_SCHEMES = ("mmaction2", "pyslowfast", "caffe2", "pytorchvideo", "torchvision3d", "torchvision", "tsm")


def for_scheme(name: str) -> ModuleType | None:
    """The family module that converts to or from scheme ``name`` (``None``: a ResNet scheme)."""
    if name in RESNET_SCHEMES:
        return None
    return next((m for m in load_all() if name in getattr(m, "SCHEMES", ())), None)


def schemes() -> list[str]:
    """Every scheme a registered family converts between (for --from / --to choices)."""
    return [s for m in load_all() for s in getattr(m, "SCHEMES", ())]


def hook(module: ModuleType, name: str, what: str):
    """A family's hook, or a one-line error saying the family does not do ``what``."""
    from .errors import Inflate3dError

    fn = getattr(module, name, None)
    if fn is None:
        raise Inflate3dError(f"the {module.NAME} family does not support {what}")
    return fn
