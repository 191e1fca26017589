"""Tell a checkpoint's naming scheme from its keys, and its architecture from native keys and shapes."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import Inflate3dError
from ..records import Record
from ..slowfast.depths import depth_of


def detect_scheme(keys, origin: str) -> tuple[str, bool]:
    """(scheme name, two pathways?) from the key names alone."""
    keys = list(keys)
    ks = set(keys)
    if any(k.startswith(("backbone.", "cls_head.")) for k in keys):
        return "mmaction2", any(".slow_path." in k for k in keys)
    if any(k.startswith(("slow_path.", "fast_path.")) for k in keys) or "conv1.conv.weight" in ks:
        return "mmaction2", any(k.startswith("slow_path.") for k in keys)
    if any(k.startswith("s1.pathway0_stem.") for k in keys):
        return "pyslowfast", any(".pathway1_" in k for k in keys)
    if "conv1_w" in ks or "res_conv1_bn_s" in ks:
        return "caffe2", "t_conv1_w" in ks
    if any(k.startswith("blocks.0.") for k in keys):
        return "pytorchvideo", any(".multipathway_blocks." in k for k in keys)
    if any(k.startswith("base_model.") for k in keys):
        return "tsm", False
    if "stem.0.weight" in ks:
        return "torchvision_video", False
    if "conv1.weight" in ks:
        return "torchvision3d", False  # or 2D "torchvision": the kernels' rank tells (convert does)
    raise Inflate3dError(f"{origin}: cannot tell the naming scheme from keys such as "
                         f"{', '.join(keys[:4])}; name the source scheme")


class ArchInfo(Record):
    """What the weights say about the network (and what they cannot say): ``family`` 'resnet3d' or
    'slowfast', per pathway its stem kernel, inflation..., and the settings the weights do not
    carry (``facts``, each with its source: facts.py) with the file's own ``record``."""

    __slots__ = ("family", "depth", "pathways", "lateral_norm", "fusion_kernel", "channel_ratio", "num_classes",
                 "notes", "facts", "record")

    def __init__(self, family: str, depth: int, pathways: dict[str, dict] | None = None,
                 lateral_norm: bool | None = None, fusion_kernel: int | None = None, channel_ratio: int | None = None,
                 num_classes: int | None = None, notes: list[str] | None = None, facts: dict | None = None,
                 record: dict | None = None) -> None:
        self.family, self.depth = family, depth
        self.pathways = {} if pathways is None else pathways
        self.lateral_norm, self.fusion_kernel, self.channel_ratio = lateral_norm, fusion_kernel, channel_ratio
        self.num_classes = num_classes
        self.notes = [] if notes is None else notes
        self.facts = {} if facts is None else facts
        self.record = {} if record is None else record


_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.")


def _blocks(keys, prefix: str) -> list[int]:
    """Blocks per stage: one more than the highest block index any name under ``prefix`` has.
    The distinct (stage, block) pairs come from one regex over the names joined by newlines (a
    thousand names, a few dozen blocks), name by name if a name holds a newline itself."""
    text = "\n".join(keys)
    if text.count("\n") == len(keys) - 1:
        found = set(re.findall(f"^{re.escape(prefix)}{_BLOCK.pattern}", text, re.MULTILINE))
    else:
        found = {m.groups() for k in keys if k.startswith(prefix) and (m := _BLOCK.match(k[len(prefix):]))}
    blocks = [0, 0, 0, 0]
    for stage, block in found:
        blocks[int(stage) - 1] = max(blocks[int(stage) - 1], int(block) + 1)
    return blocks


def _pathway_info(tensors: Mapping[str, Any], prefix: str, origin: str) -> dict:
    blocks = _blocks(tensors, prefix)
    bottleneck = f"{prefix}layer1.0.conv3.conv.weight" in tensors
    depth = depth_of(blocks, bottleneck)
    if depth is None:
        raise Inflate3dError(f"{origin}: blocks per stage {tuple(blocks)} match no ResNet depth")
    stem = tuple(tensors[f"{prefix}conv1.conv.weight"].shape[2:])
    inflate, styles = [], []
    for stage, n in enumerate(blocks, start=1):
        flags, stage_styles = [], []
        for b in range(n):
            k1 = tensors[f"{prefix}layer{stage}.{b}.conv1.conv.weight"].shape[2]
            k2 = tensors[f"{prefix}layer{stage}.{b}.conv2.conv.weight"].shape[2]
            flags.append(int(k1 > 1 or k2 > 1))
            stage_styles.append("3x3x3" if bottleneck and k2 > 1 and k1 == 1 else "3x1x1")
        inflate.append(tuple(flags))
        styles.append(tuple(stage_styles))
    non_local = tuple(tuple(int(f"{prefix}layer{stage}.{b}.non_local_block.theta.conv.weight" in tensors)
                            for b in range(n)) for stage, n in enumerate(blocks, start=1))
    used = {st for stage, fl in zip(styles, inflate) for st, f in zip(stage, fl) if f}
    return {"depth": depth, "stage_blocks": tuple(blocks), "conv1_kernel": stem,
            "base_channels": int(tensors[f"{prefix}conv1.conv.weight"].shape[0]),
            "inflate": tuple(inflate), "inflate_styles": tuple(styles), "non_local": non_local,
            "non_local_out_bias": any(k.startswith(prefix) and k.endswith("non_local_block.conv_out.conv.bias")
                                      for k in tensors),
            "inflate_style": used.pop() if len(used) == 1 else ("mixed" if used else "3x1x1")}


def infer_arch(native: Mapping[str, Any], origin: str) -> ArchInfo:
    """Depth, pathways, stem and per-block temporal kernels, fusion, head, from native names."""
    try:
        return _infer_arch(native, origin)
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as e:
        raise Inflate3dError(f"{origin}: keys and shapes do not form a 3D ResNet ({type(e).__name__}: "
                             f"{e})") from None


def _infer_arch(native: Mapping[str, Any], origin: str) -> ArchInfo:
    head = native.get("cls_head.fc_cls.weight")
    num_classes = int(head.shape[0]) if head is not None else None
    if "backbone.slow_path.conv1.conv.weight" in native:
        slow = _pathway_info(native, "backbone.slow_path.", origin)
        fast = _pathway_info(native, "backbone.fast_path.", origin)
        lat = native.get("backbone.slow_path.conv1_lateral.conv.weight")
        info = ArchInfo("slowfast", slow["depth"], {"slow": slow, "fast": fast},
                        lateral_norm="backbone.slow_path.conv1_lateral.bn.weight" in native,
                        fusion_kernel=int(lat.shape[2]) if lat is not None else None,
                        channel_ratio=slow["base_channels"] // fast["base_channels"], num_classes=num_classes)
        return info
    if "backbone.layer1.0.conv2.0.conv.weight" in native:
        return _csn_info(native, origin, num_classes)
    if "backbone.conv1.conv.conv_s.weight" in native or "backbone.layer1.0.conv2.conv.conv_s.weight" in native:
        return _r2plus1d_info(native, origin, num_classes)
    if native["backbone.conv1.conv.weight"].dim() == 4:
        return _tsm_info(native, origin, num_classes)
    single = _pathway_info(native, "backbone.", origin)
    return ArchInfo("resnet3d", single["depth"], {"backbone": single}, num_classes=num_classes)


def strip_net(key: str) -> str:
    """A key without TSM's shift / pool wrappers (``conv1.conv.net.weight`` -> ``conv1.conv.weight``)."""
    return ".".join(p for p in key.split(".") if p != "net")


def _tsm_info(native: Mapping[str, Any], origin: str, num_classes) -> ArchInfo:
    plain = {strip_net(k): v for k, v in native.items()}
    blocks = _blocks(plain, "backbone.")
    bottleneck = "backbone.layer1.0.conv3.conv.weight" in plain
    depth = depth_of(blocks, bottleneck)
    if depth is None:
        raise Inflate3dError(f"{origin}: blocks per stage {tuple(blocks)} match no ResNet depth")
    place = "block" if any(re.search(r"layer\d\.\d+\.net\.", k) for k in native) else "blockres"
    info = ArchInfo("tsm", depth, {"backbone": {"depth": depth, "stage_blocks": tuple(blocks),
                                                "shift_place": place,
                                                "shifted": sum(".net." in k for k in native
                                                               if k.endswith("conv1.conv.net.weight"))}},
                    num_classes=num_classes)
    if not any(".net." in k for k in native):
        info.notes.append("no temporal-shift wrappers in the names (2D / TSN names): the shifts are placed "
                          "as the TSM architecture places them (mmaction2's C2D has these very keys: "
                          "--arch c2d_r50)")
    return info


def _r2plus1d_info(native: Mapping[str, Any], origin: str, num_classes) -> ArchInfo:
    """R(2+1)D: blocks per stage, the stem's kernel and whether each block's conv has a temporal tap,
    read from the factorised convs (``conv_s`` 1 x k x k, ``conv_t`` t x 1 x 1)."""
    blocks = _blocks(native, "backbone.")
    bottleneck = "backbone.layer1.0.conv3.conv.weight" in native
    depth = depth_of(blocks, bottleneck)
    if depth is None:
        raise Inflate3dError(f"{origin}: blocks per stage {tuple(blocks)} match no R(2+1)D depth")
    if "backbone.conv1.conv.conv_s.weight" in native:
        conv_s, conv_t = native["backbone.conv1.conv.conv_s.weight"], native["backbone.conv1.conv.conv_t.weight"]
        stem = (int(conv_t.shape[2]), int(conv_s.shape[3]), int(conv_s.shape[4]))
        width = int(conv_t.shape[0])
    else:
        stem, width = tuple(native["backbone.conv1.conv.weight"].shape[2:]), int(native["backbone.conv1.conv.weight"].shape[0])
    conv = "conv2" if bottleneck else "conv1"
    inflate = tuple(tuple(int(native[f"backbone.layer{s + 1}.{b}.{conv}.conv.conv_t.weight"].shape[2] > 1)
                          for b in range(n)) for s, n in enumerate(blocks))
    return ArchInfo("r2plus1d", depth, {"backbone": {
        "depth": depth, "stage_blocks": tuple(blocks), "base_channels": width,
        "conv1_kernel": stem,
        "inflate": inflate, "inflate_styles": tuple(("3x1x1",) * n for n in blocks), "inflate_style": "3x1x1"}},
        num_classes=num_classes)


def _csn_info(native: Mapping[str, Any], origin: str, num_classes) -> ArchInfo:
    """CSN: depth from the blocks per stage; 'ip' when a 1x1x1 conv precedes the depthwise one."""
    blocks = _blocks(native, "backbone.")
    depth = depth_of(blocks, True)
    if depth is None:
        raise Inflate3dError(f"{origin}: blocks per stage {tuple(blocks)} match no CSN depth")
    stem = native["backbone.conv1.conv.weight"]
    mode = "ip" if "backbone.layer1.0.conv2.1.conv.weight" in native else "ir"
    return ArchInfo("csn", depth, {"backbone": {
        "depth": depth, "stage_blocks": tuple(blocks), "conv1_kernel": tuple(stem.shape[2:]),
        "base_channels": int(stem.shape[0]), "bottleneck_mode": mode,
        "inflate": tuple((1,) * n for n in blocks), "inflate_styles": tuple(("3x3x3",) * n for n in blocks),
        "inflate_style": "3x3x3"}}, num_classes=num_classes)
