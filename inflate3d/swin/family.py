"""The Video Swin family's hooks (see ``inflate3d.families.FamilyHooks``)."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import CHECK_FAILED, Inflate3dError, InvalidInputError
from ..io.checkpoint import metadata_json
from ..slowfast.archs import Arch, build_model, register, register_builder
from . import archs as _archs
from .config import config_2d, config_3d, exact_lengths, is_exact, match_arch, tuple_or
from .detect import PREFIX_2D, detect_scheme  # noqa: F401 (a hook)
from .schemes import detect_2d, detect_3d, stages_of, to_canonical, torchvision3d_table

if TYPE_CHECKING:  # torch-free to import (``inspect``); inflating and verifying import the networks
    import torch

    from .inflation import Plan

NAME = "swin"
ARCH_FAMILIES = (_archs.FAMILY,)
SCHEMES = ("mmaction2", "torchvision")

for _a in _archs.archs():
    register(_a)
register_builder(_archs.FAMILY, _archs.build)


# --- sources -------------------------------------------------------------------------------------

@dataclass
class SwinSource:
    """A 2D Swin in canonical (Microsoft) names, with where it came from."""
    tensors: dict[str, torch.Tensor]
    label: str
    scheme: str  # microsoft | timm | torchvision | huggingface | mmpretrain
    sha256: str
    path: Path | None = None
    container: str | None = None
    kind: str = "file"
    depth: int | None = None

    @property
    def description(self) -> str:
        wrapped = f", unwrapped from '{self.container}'" if self.container else ""
        return f"file {self.label} ({self.scheme} 2D Swin{wrapped})"


def load_source(spec: str | None, *, trust_pickle: bool = False) -> SwinSource:
    from ..io.load import load_checkpoint, sha256_file

    if spec is None:
        raise Inflate3dError("Video Swin inflates from a 2D Swin checkpoint: give its path (Microsoft, timm, "
                             "torchvision, Hugging Face or mmpretrain weights)")
    path = Path(spec)
    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    scheme = detect_2d(ckpt.tensors)
    if scheme is None:
        raise Inflate3dError(f"{spec}: not a 2D Swin (no Microsoft, timm, torchvision, Hugging Face or "
                             f"mmpretrain Swin keys, e.g. {next(iter(ckpt.tensors))}); point to a 2D Swin checkpoint")
    return SwinSource(to_canonical(ckpt.tensors, scheme, spec), path.name, scheme, sha256_file(path), path,
                      ckpt.container)


# --- inflation -----------------------------------------------------------------------------------

@dataclass
class SwinInflation:
    arch: Arch
    method: str
    head: str | int | None
    source: SwinSource
    model: torch.nn.Module  # meta device
    plan: Plan
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def window(self) -> tuple[int, int, int]:
        return tuple(self.model.backbone.window_size)

    def specs(self) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        import torch

        dtype = self.source.tensors["patch_embed.proj.weight"].dtype
        return [(e.key, e.shape, torch.int64 if e.key.endswith("relative_position_index") else
                 (self.source.tensors[e.source].dtype if e.source else dtype)) for e in self.plan.entries]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        from .inflation import iter_tensors

        yield from iter_tensors(self.plan, self.source.tensors, self._fresh(), method=self.method, window=self.window)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors())

    def _fresh(self) -> dict[str, torch.Tensor]:
        if not self.plan.fresh_units:
            return {}
        import torch

        from ..inflate.inflater import _materialise

        head = _materialise(self.model.cls_head)
        head.init_weights(generator=torch.Generator().manual_seed(self.seed))
        dtype = self.source.tensors["patch_embed.proj.weight"].dtype
        return {f"cls_head.{k}": v.to(dtype) for k, v in head.state_dict().items()}

    def metadata(self) -> dict[str, str]:
        meta = {"format": "inflate3d", "inflate3d_version": __version__, "scheme": "mmaction2",
                "arch": self.arch.name, "method": self.method, "head": "none" if self.head is None else str(self.head),
                "source": self.source.label, "source_kind": self.source.kind, "source_scheme": self.source.scheme,
                "source_sha256": self.source.sha256, "seed": str(self.seed)}
        if self.overrides:
            meta["arch_overrides"] = json.dumps(self.overrides, sort_keys=True)
        return meta


def prepare(source, arch: Arch, *, method: str = "mean", head=None, seed: int = 0, trust_pickle: bool = False,
            **overrides: Any) -> SwinInflation:
    """Plan the inflation of a 2D Swin (path or :class:`SwinSource`) into ``arch`` (+ backbone overrides)."""
    from ..inflate.inflater import parse_head
    from ..inflate.kernels import METHODS
    from .inflation import check_fits, plan

    if method not in METHODS:
        raise Inflate3dError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    head = parse_head(head)
    src = source if isinstance(source, SwinSource) else load_source(source, trust_pickle=trust_pickle)
    cfg2d = config_2d(src.tensors, src.label)
    backbone = _archs.backbone_settings(arch, overrides)
    notes = check_fits(cfg2d, backbone, arch.name, src.label)
    if head == "imagenet":
        if cfg2d["num_classes"] is None:
            raise Inflate3dError(f"{src.label}: has no classifier (head.*), so --head imagenet has nothing to "
                                 "keep; use --head none or --head N")
        num_classes = cfg2d["num_classes"]
    else:
        num_classes = head
    model = build_model(arch, num_classes=num_classes, device="meta", init=False, **overrides)
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    p = plan(target, src.tensors, last=model.backbone.last, head_from_2d=head == "imagenet",
             window=tuple(backbone["window_size"]), origin=src.label)
    return SwinInflation(arch, method, head, src, model, p, seed, dict(overrides), notes)


# --- names ---------------------------------------------------------------------------------------

def native_names(keys, scheme: str, origin: str) -> dict[str, str]:
    """{native key: file key} for a Video Swin file in ``scheme``; for a 2D Swin, {canonical 2D
    (Microsoft) key: file key}, so 2D files in different codebases' names compare."""
    keys = list(keys)
    if scheme.startswith(PREFIX_2D):
        name = scheme[len(PREFIX_2D):]
        if name == "huggingface":
            raise Inflate3dError(f"{origin}: Hugging Face keeps query, key and value apart, so its names do not "
                                 "line up one to one with other Swins; inflate both and compare the results")
        from .schemes import SOURCES_2D

        table = SOURCES_2D[name]
        return {new: k for k in keys if (hit := table.to_native(k))[0] and (new := hit[1]) is not None}
    if scheme == "mmaction2":
        bare = not any(k.startswith(("backbone.", "cls_head.")) for k in keys)
        return {(f"backbone.{k}" if bare else k): k for k in keys}
    table = torchvision3d_table(stages_of(keys))
    out, unmapped = {}, []
    for k in keys:
        ok, new = table.to_native(k)
        if not ok:
            unmapped.append(k)
        elif new is not None:
            out[new] = k
    if unmapped:
        raise Inflate3dError(f"{origin}: {len(unmapped)} keys are not torchvision Swin3d names: {', '.join(unmapped[:4])}")
    return out


def to_native(tensors: Mapping[str, torch.Tensor], scheme: str, origin: str) -> dict[str, torch.Tensor]:
    return {n: tensors[k] for n, k in native_names(tensors.keys(), scheme, origin).items()}


def shapes(arch_name: str, num_classes: int | None, overrides: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    from ..slowfast.archs import state_dict_shapes

    return state_dict_shapes(arch_name, num_classes=num_classes, **overrides)


# --- conversion ----------------------------------------------------------------------------------

@dataclass
class _ArchFacts:
    num_classes: int | None


@dataclass
class SwinConversion:
    source_scheme: str
    target_scheme: str
    tensors: dict[str, torch.Tensor]
    key_map: list[tuple[str | None, str | None, str | None]]
    arch: _ArchFacts
    arch_name: str
    arch_overrides: dict
    notes: list[str] = field(default_factory=list)
    two_pathways: bool = False


def convert(tensors: Mapping[str, torch.Tensor], *, source: str | None, target: str, origin: str,
            arch: str | None = None, config: str | None = None, metadata: Mapping[str, str] | None = None,
            settings: Mapping | None = None) -> SwinConversion:
    """``config`` and ``metadata`` (what the file records beside its weights) tell a Swin nothing:
    its names and shapes do."""
    detected = detect_3d(tensors.keys())
    if detected is None:  # a 2D Swin
        scheme2d = detect_2d(tensors.keys())
        what = f"a 2D {scheme2d} Swin: use `inflate3d inflate` to make a Video Swin" if scheme2d else "not a Video Swin"
        raise Inflate3dError(f"{origin}: {what}")
    if source and source != detected:
        raise Inflate3dError(f"{origin}: --from {source}, but its keys are {detected}'s "
                             f"(e.g. {next(iter(tensors))}); drop --from or fix it")
    if target not in SCHEMES:
        raise Inflate3dError(f"{origin}: a Video Swin converts to {' or '.join(SCHEMES)} (Hugging Face has no "
                             f"Video Swin), not {target}")
    names = native_names(tensors.keys(), detected, origin)
    native = {n: tensors[k] for n, k in names.items()}
    cfg = config_3d({k: tuple(v.shape) for k, v in native.items()}, origin)
    _agreeing(settings, cfg)
    arch_obj, overrides = match_arch(cfg, origin, arch)
    order = shapes(arch_obj.name, cfg["num_classes"], overrides)
    missing = [k for k in order if k not in native]
    extra = [k for k in native if k not in order]
    if missing or extra:
        raise Inflate3dError(f"{origin}: does not load strictly into {arch_obj.name}: missing {missing[:3]}, "
                             f"unexpected {extra[:3]}")
    native = {k: native[k] for k in order}
    notes = []
    if target == "mmaction2":
        out, back = dict(native), {k: k for k in native}
    else:
        table = torchvision3d_table(len(cfg["depths"]))
        out, back = {}, {}
        for k, t in native.items():
            new = table.from_native(k)[1]
            out[new], back[k] = t, new
        if cfg["num_classes"] is None:
            notes.append("backbone only: torchvision's SwinTransformer3d also has a head, which this file lacks")
    key_map = [(k, n, back.get(n)) for n, k in names.items()]
    return SwinConversion(detected, target, out, key_map, _ArchFacts(cfg["num_classes"]), arch_obj.name,
                          overrides, notes)


# --- verification --------------------------------------------------------------------------------

def verify(tensors: Mapping[str, torch.Tensor], arch: Arch, source, *, method: str | None, origin: str,
           size: int = 32, metadata: Mapping[str, str] | None = None, trust_pickle: bool = False,
           frames: int | None = None, seed: int = 0):
    """Strict load, then the static-clip proof against torchvision's 2D Swin with the source's
    weights, at a clip length where it is exact (a warning says so when ``frames`` is not one)."""
    from ..inflate.kernels import kernel_method
    from ..verify import Verification
    from ..verify.boring import TOLERANCE, StageCheck
    from ..verify.strict import strict_load
    from .proof import build_2d, final_error, min_size, static_clip_check

    metadata = metadata or {}
    scheme = detect_3d(tensors.keys())
    if scheme is None:
        raise Inflate3dError(f"{origin}: not a Video Swin checkpoint")
    native = to_native(tensors, scheme, origin)
    cfg = config_3d({k: tuple(v.shape) for k, v in native.items()}, origin)
    overrides = recorded_overrides(metadata, arch, origin)  # the arch as named, never fitted to the file
    model = build_model(arch, num_classes=cfg["num_classes"], device="meta", init=False, **overrides)
    strict_load(model, native, origin)
    src = source if isinstance(source, SwinSource) else load_source(source, trust_pickle=trust_pickle)
    recorded = metadata.get("source_sha256")
    if recorded and recorded != src.sha256:
        raise Inflate3dError(f"{src.label}: sha256 {src.sha256[:12]}... differs from the {recorded[:12]}... "
                             f"recorded in {origin}; this is not its source", exit_code=CHECK_FAILED)
    method = method or kernel_method(native["backbone.patch_embed.proj.weight"])
    ver = Verification(arch.name, "mean" if method == "copy" else method)
    if recorded:
        ver.notes.append(f"source sha256 matches the metadata ({recorded[:12]}...)")
    ver.notes.append(f"strict load into {arch.name}{' with ' + str(overrides) if overrides else ''}: "
                     f"{len(native)} tensors, no missing or unexpected keys, all shapes equal")
    cfg2d = config_2d(src.tensors, src.label)
    pt, wd = cfg["patch_size"][0], cfg["window_size"][0]
    if tuple(cfg["window_size"][1:]) != cfg2d["window"]:
        ver.warnings.append(f"the 2D window {cfg2d['window']} was resized to {cfg['window_size'][1:]}: the 3D net "
                            "is not the 2D one on a static clip; checked the tensors against their inflation instead")
        ver.checks.append(_weights_check(native, src, arch, method, overrides, cfg, StageCheck, TOLERANCE))
        return ver
    net2d = build_2d(src.tensors, cfg2d)
    side = max(size, min_size(cfg["patch_size"][1], cfg["window_size"][1], len(cfg["depths"])))
    length = frames or pt * wd
    if not is_exact(length, pt, wd):
        err = final_error(model, net2d, frames=length, size=side, seed=seed)
        exact = pt * wd * max(1, round(length / (pt * wd)))
        ver.warnings.append(
            f"T={length}: {-(-length // pt)} temporal tokens do not fill windows of {wd}, so mmaction2 pads the last "
            f"window with tokens it does not mask and the 3D net is not the 2D net frame by frame (measured max rel "
            f"err {err:.2e} at the final norm); this is expected, not a fault: verified at T={exact} instead. Exact "
            f"lengths: {', '.join(map(str, exact_lengths(pt, wd)))}, ...")
        length = exact
    compare_logits = cfg["num_classes"] is not None and cfg["num_classes"] == cfg2d["num_classes"]
    dtype = native["backbone.patch_embed.proj.weight"].dtype
    ver.checks = static_clip_check(model, net2d, frames=length, size=side, seed=seed, dtype=dtype,
                                   compare_logits=compare_logits)
    ver.notes.append(f"static clip {length}x{side}x{side} (exact at T in {', '.join(map(str, exact_lengths(pt, wd, 32)))}, ...)")
    return ver


def recorded_overrides(metadata: Mapping[str, str], arch: Arch, origin: str) -> dict[str, Any]:
    """The backbone overrides an inflation recorded (``arch_overrides``), when it was for ``arch``."""
    if metadata.get("arch") != arch.name or not metadata.get("arch_overrides"):
        return {}
    recorded = metadata_json(metadata, "arch_overrides", origin) or {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()}


def _weights_check(native, src, arch, method, overrides, cfg, StageCheck, TOLERANCE):
    """Every tensor against its re-inflation from the source (when no functional check applies)."""
    from ..inflate.mapping import FRESH

    head = "imagenet" if cfg["num_classes"] is not None and "head.weight" in src.tensors and \
        cfg["num_classes"] == src.tensors["head.weight"].shape[0] else None
    inflation = prepare(src, arch, method="mean" if method == "copy" else method, head=head, **overrides)
    worst_abs, worst_rel = 0.0, 0.0
    for e, (key, t) in zip(inflation.plan.entries, inflation.tensors()):
        if e.action == FRESH:
            continue
        a, b = native[key].double(), t.double()
        d = float((a - b).abs().max()) if a.numel() else 0.0
        scale = float(b.abs().max()) if b.numel() else 0.0
        worst_abs, worst_rel = max(worst_abs, d), max(worst_rel, d / scale if scale else (0.0 if d == 0 else float("inf")))
    return StageCheck("weights", None, worst_abs, worst_rel, 0.0)


# --- inspect and diff ----------------------------------------------------------------------------

def _agreeing(settings, cfg: Mapping[str, Any]) -> None:
    """``--set`` on a Swin: its settings all follow from its weights (patch, window, depths, heads),
    so a stated one must agree with them (the proof restates them); any other is refused."""
    for key, value in (settings or {}).items():
        if key not in cfg or tuple_or(cfg[key]) != tuple_or(value):
            said = f"the weights say {key}={cfg[key]}" if key in cfg else f"not a Swin setting ({', '.join(cfg)})"
            raise InvalidInputError(f"--set {key}: a Swin's settings all follow from its weights; {said}")


def describe(tensors: Mapping[str, torch.Tensor], scheme: str, origin: str, *, prefix: str | None = None,
             config: str | None = None, metadata: Mapping[str, str] | None = None,
             settings: Mapping | None = None) -> dict[str, Any]:
    """A Video Swin's or a 2D Swin's settings, from its shapes alone (the record beside the names,
    ``prefix``, ``config``, ``metadata``, adds nothing: the shapes name the arch)."""
    if scheme.startswith(PREFIX_2D):
        _agreeing(settings, {})
        return _describe_2d(tensors, scheme[len(PREFIX_2D):], origin)
    native = to_native(tensors, scheme, origin)
    cfg = config_3d({k: tuple(v.shape) for k, v in native.items()}, origin)
    _agreeing(settings, cfg)
    arch_obj, overrides = match_arch(cfg, origin)
    pt, wd = cfg["patch_size"][0], cfg["window_size"][0]
    return {"family": "Video Swin (SwinTransformer3D)",
            "matches": arch_obj.name + (f" with {overrides}" if overrides else ""),
            "embed_dims": cfg["embed_dims"], "depths": list(cfg["depths"]), "num_heads": list(cfg["num_heads"]),
            "patch_size": "x".join(map(str, cfg["patch_size"])), "window_size": "x".join(map(str, cfg["window_size"])),
            "head_classes": cfg["num_classes"] if cfg["num_classes"] else "none (backbone only)",
            "exact_clip_lengths": ", ".join(map(str, exact_lengths(pt, wd))) + ", ... (multiples of "
                                  f"{pt * wd})",
            "notes": [f"a static clip reproduces the 2D net frame by frame only when T/{pt} fits one temporal window "
                      f"or fills whole windows of {wd}; elsewhere mmaction2's padding tokens are not masked"]}


def _describe_2d(tensors, scheme: str, origin: str) -> dict[str, Any]:
    cfg = config_2d(to_canonical(tensors, scheme, origin), origin)
    fits = [a.name for a in _archs.archs() if a.backbone["embed_dims"] == cfg["embed_dims"]
            and tuple(a.backbone["depths"]) == cfg["depths"] and tuple(a.backbone["num_heads"]) == cfg["num_heads"]]
    return {"family": f"2D Swin ({scheme})", "embed_dims": cfg["embed_dims"], "depths": list(cfg["depths"]),
            "num_heads": list(cfg["num_heads"]), "patch_size": "x".join(map(str, cfg["patch"])),
            "window_size": "x".join(map(str, cfg["window"])),
            "head_classes": cfg["num_classes"] if cfg["num_classes"] else "none (backbone only)",
            "inflates_into": ", ".join(fits) if fits else "no named Video Swin (other width, depths or heads)",
            "notes": []}


def diff_inflated(a_path, b_path, *, keys: str | None = None, trust_pickle: bool = False):
    from .diff import diff_inflated as run

    return run(a_path, b_path, keys=keys, trust_pickle=trust_pickle)
