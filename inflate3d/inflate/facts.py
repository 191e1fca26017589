"""Architecture facts that the weights do not carry (temporal strides, pools, alpha), each with
where it came from.

Shapes cannot tell mmaction2's I3D (stem stride 2 in time) from PySlowFast's (stride 1, a 2x1x1
pool after res2), nor SlowFast's alpha. So these facts are read, in order, from: ``--set``; the
file's own record (PySlowFast's ``cfg``, inflate3d's metadata); the structure of the names
(pytorchvideo's pool block); the codebase whose names the file uses; and last a stated convention
that says how to override it. Nothing is guessed silently: every fact carries its source.
"""
from __future__ import annotations

from typing import Any

from ..records import FrozenRecord
from .settings import as_tuples, flatten_settings, read_recorded_settings


class Fact(FrozenRecord):
    __slots__ = ("value", "source")
    value: Any
    source: str

    def __init__(self, value: Any, source: str) -> None:
        # source: where the value was read, or the convention it follows and how to override it
        self._set(value=value, source=source)

    @property
    def assumed(self) -> bool:
        return self.source.startswith("convention")


# PySlowFast's ResNet (video_model_builder.py): which MODEL.ARCH pools time after res2 (_POOL1)
_PYSF_POOL2 = {"c2d": True, "i3d": True, "slow_c2d": False, "slow_i3d": False, "slow": False,
               "slowfast": False, "2d": False}


_CFG_TEXT = ("MODEL.ARCH", "NONLOCAL.INSTANTIATION")
_CFG_COUNTS = ("MODEL.NUM_CLASSES", "RESNET.DEPTH", "SLOWFAST.ALPHA", "SLOWFAST.BETA_INV",
               "SLOWFAST.FUSION_KERNEL_SZ", "DATA.NUM_FRAMES", "DATA.SAMPLING_RATE")


def pyslowfast_record(text: str) -> dict[str, Any]:
    """The architecture part of PySlowFast's ``cfg`` (the YAML its ``save_checkpoint`` stores):
    names as strings, counts as positive ints; a value of another type is not taken (the fact it
    would give is then a stated convention)."""
    from ..io.yacs_yaml import read_scalars

    cfg = read_scalars(text)
    texts = {k: cfg[k] for k in _CFG_TEXT if isinstance(cfg.get(k), str)}
    counts = {k: cfg[k] for k in _CFG_COUNTS if type(cfg.get(k)) is int and cfg[k] > 0}
    return {**texts, **counts}


# What an mmaction2 backbone config states that its weights cannot: strides, pools, dilations and
# alpha, per family (a SlowFast's per pathway too); the non-local blocks' maths
_MM_BACKBONE = {
    "resnet3d": ("conv1_stride_t", "pool1_stride_t", "with_pool1", "with_pool2", "temporal_strides",
                 "spatial_strides", "dilations", "non_local_cfg.mode", "non_local_cfg.use_scale"),
    "slowfast": ("resample_rate", "speed_ratio"),
    "tsm": ("num_segments", "shift_div"),
}
_MM_BACKBONE["csn"] = _MM_BACKBONE["r2plus1d"] = _MM_BACKBONE["resnet3d"]


def mmaction2_record(text: str, family: str) -> dict[str, Any]:
    """The settings an mmaction2 checkpoint's training config (``meta['cfg']``, mmengine's
    ``pretty_text``) gives its backbone, dotted as native settings (``slow_pathway.conv1_stride_t``)."""
    from ..io.mm_config import read_model

    backbone = read_model(text).get("backbone")
    if not isinstance(backbone, dict):
        return {}
    flat = flatten_settings(backbone)
    wanted = set(_MM_BACKBONE.get(family, ()))
    if family == "slowfast":  # the pathways' strides and pools (no named SlowFast has non-local blocks)
        wanted |= {f"{p}.{k}" for p in ("slow_pathway", "fast_pathway") for k in _MM_BACKBONE["resnet3d"]
                   if not k.startswith("non_local_cfg.")}
    return {k: as_tuples(v) for k, v in flat.items() if k in wanted}


def gather_facts(*, scheme: str, two: bool, stem_t: int | None, inflated: bool, inflate=(),
                 fusion_kernel: int | None, depth: int, record: dict[str, Any],
                 metadata_arch: str | None, names_pool2: bool | None,
                 settings: dict[str, Any], metadata_settings: dict[str, Any] | None = None,
                 has_non_local: bool = False, mm_record: dict[str, Any] | None = None) -> dict[str, Fact]:
    """The backbone settings the file states or implies, keyed by native setting name (dotted
    for a SlowFast pathway), plus ``arch`` when the file names its architecture. ``mm_record``:
    what an mmaction2 checkpoint's config states (``mmaction2_record``); it outranks conventions."""
    facts: dict[str, Fact] = {}
    if metadata_arch:
        facts["arch"] = Fact(metadata_arch, "inflate3d metadata (arch)")
        for key, value in flatten_settings(metadata_settings).items():
            facts[key] = Fact(tuple(value) if isinstance(value, list) else value,
                              "inflate3d metadata (arch_settings)")
    arch_cfg = record.get("MODEL.ARCH")
    if two:
        _slowfast_facts(facts, record, fusion_kernel, depth, metadata_arch)
    elif scheme in ("pyslowfast", "caffe2", "pytorchvideo") and not metadata_arch:
        code = "pytorchvideo" if scheme == "pytorchvideo" else "PySlowFast"
        facts["conv1_stride_t"] = Fact(1, f"{code} names: its ResNet stems keep every frame")
        facts["pool1_stride_t"] = Fact(1, f"{code} names: its stem pool is 1x3x3")
        if names_pool2 is not None:
            facts["with_pool2"] = Fact(names_pool2, "names: a pool block after the first stage"
                                       if names_pool2 else "names: no pool block between stages")
        elif arch_cfg in _PYSF_POOL2:
            facts["with_pool2"] = Fact(_PYSF_POOL2[arch_cfg], f"checkpoint cfg (MODEL.ARCH={arch_cfg})")
        elif stem_t is not None:
            kind = "I3D" if stem_t > 1 else ("Slow" if inflated else "C2D")
            facts["with_pool2"] = Fact(kind != "Slow", f"convention: the kernels say {kind}, and "
                                       "PySlowFast pools time after res2 in I3D and C2D, not in Slow; "
                                       "override with --set with_pool2=True|False")
    elif scheme == "torchvision_video" and not metadata_arch:
        why = "torchvision video names: "
        facts["conv1_stride_t"] = Fact(1, why + "its stem conv has stride (1, 2, 2)")
        facts["with_pool1"] = Fact(False, why + "its stem has no max pool")
        facts["with_pool2"] = Fact(False, why + "no pool between stages")
        # a 3x3x3 conv (Conv3DSimple) strides time with space; a 1x3x3 one (Conv3DNoTemporal) does not
        facts["temporal_strides"] = Fact((1,) + tuple(2 if stage and stage[0] else 1 for stage in inflate[1:]),
                                         why + "stages whose convs are 3x3x3 stride time by 2")
    if has_non_local and not metadata_arch:
        _non_local_facts(facts, scheme, record, two, stem_t)
    for key, value in (mm_record or {}).items():
        facts[key] = Fact(value, f"checkpoint meta cfg (model.backbone.{key})")
    for key, value in flatten_settings(settings).items():
        facts[key] = Fact(value, "--set")
    if two and "speed_ratio" in settings and "resample_rate" not in settings:
        facts["resample_rate"] = Fact(settings["speed_ratio"], "--set speed_ratio (resample_rate = alpha: the "
                                                               "clip is the fast pathway's frames)")
    return facts


# PySlowFast's NONLOCAL.INSTANTIATION -> the native (mmcv) mode and scaling
_PYSF_NL = {"softmax": ("embedded_gaussian", True), "dot_product": ("dot_product", False)}


def _non_local_facts(facts: dict[str, Fact], scheme: str, record: dict[str, Any], two: bool,
                     stem_t: int | None) -> None:
    pysf = scheme in ("pyslowfast", "caffe2")
    inst = record.get("NONLOCAL.INSTANTIATION")
    if inst in _PYSF_NL:
        mode, scale = _PYSF_NL[inst]
        src = f"checkpoint cfg (NONLOCAL.INSTANTIATION={inst})"
    elif pysf:  # PySlowFast's zoo: softmax in I3D/C2D, dot product in Slow and SlowFast
        mode, scale = _PYSF_NL["dot_product" if two or stem_t == 1 else "softmax"]
        src = ("convention: PySlowFast's zoo uses dot_product in Slow/SlowFast, softmax in I3D/C2D; "
               "override with --set non_local_cfg.mode=embedded_gaussian|dot_product")
    else:
        mode, scale = "dot_product", False
        src = ("convention: mmaction2's non-local I3D config is dot_product; override with "
               "--set non_local_cfg.mode=embedded_gaussian")
    facts["non_local_cfg.mode"] = Fact(mode, src)
    facts["non_local_cfg.use_scale"] = Fact(scale, src)
    facts["non_local_cfg.pool_first"] = Fact(
        pysf, "PySlowFast names: its non-local pools before phi and g" if pysf
        else f"{scheme} names: non-local pools after phi and g (mmaction2's NonLocal3d)")


def _slowfast_facts(facts: dict[str, Fact], record: dict[str, Any], fusion_kernel: int | None,
                    depth: int, metadata_arch: str | None) -> None:
    if "SLOWFAST.ALPHA" in record:
        alpha = record["SLOWFAST.ALPHA"]
        facts["speed_ratio"] = Fact(alpha, "checkpoint cfg (SLOWFAST.ALPHA)")
        facts["resample_rate"] = Fact(alpha, "checkpoint cfg (SLOWFAST.ALPHA; the clip is the fast "
                                             "pathway's frames)")
        return
    if metadata_arch or fusion_kernel is None:
        return  # a named architecture carries alpha
    alpha = 4 if fusion_kernel == 7 or depth >= 101 else 8
    facts["speed_ratio"] = Fact(alpha, f"convention: fusion kernel {fusion_kernel} at depth {depth} -> "
                                f"alpha {alpha}, as in PySlowFast's zoo (except its 8x8 NLN R50: alpha 4 "
                                "with kernel 5); override with --set speed_ratio=N")
    facts["resample_rate"] = Fact(alpha, "convention: resample_rate = alpha (the clip is the fast "
                                         "pathway's frames); override with --set resample_rate=N")


def facts_for(info, *, scheme: str, two: bool, names_pool2: bool | None, config: str | None,
              metadata: dict[str, str] | None, settings: dict[str, Any] | None) -> dict[str, Fact]:
    """``gather_facts`` for an inferred architecture (``detect.ArchInfo``); the record's own facts
    are kept on ``info.record`` for display."""
    record = pyslowfast_record(config) if config else {}
    metadata = metadata or {}
    mm_record = mmaction2_record(metadata["cfg"], info.family) \
        if scheme == "mmaction2" and metadata.get("cfg") and not metadata.get("arch") else {}
    info.record = record or {f"model.backbone.{k}": v for k, v in mm_record.items()}
    stored = read_recorded_settings(metadata.get("arch_settings") or "")
    main = next(iter(info.pathways.values()), {})
    inflated = any(any(stage) for stage in main.get("inflate", ()))
    stem = main.get("conv1_kernel")
    return gather_facts(scheme=scheme, two=two, stem_t=stem[0] if stem else None, inflated=inflated,
                        inflate=main.get("inflate", ()),
                        has_non_local=any(any(s) for s in main.get("non_local", ())),
                        fusion_kernel=info.fusion_kernel, depth=info.depth, record=record,
                        metadata_arch=metadata.get("arch") or None, names_pool2=names_pool2,
                        settings=settings or {}, metadata_settings=stored if isinstance(stored, dict) else {},
                        mm_record=mm_record)
