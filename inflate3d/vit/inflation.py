"""ViT -> TimeSformer / ViViT: the plan (where every output tensor comes from), then the tensors.

TimeSformer (divided): each block's spatial attention, MLP and norms are the ViT block's; the
temporal attention is a copy of the spatial one whose output projection ``temporal_fc`` is zero,
so every block starts as the ViT block; ``time_embed`` is zero; the 2D position embedding is kept
(resampled on its 2D grid when the patch grid differs). Joint / space-only layers are the ViT
blocks as they are. ViViT: the tubelet kernel from the patch kernel (``kernels``), the position
embedding tiled over the tubelet steps, q / k / v split from the ViT's fused ``qkv``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import Inflate3dError
from ..inflate.mapping import FRESH, Entry, Plan
from ..slowfast.archs import Arch, build_model
from .kernels import TUBELET_METHODS, resize_pos_embed, tile_pos_embed, tubelet_kernel
from .vit2d import ViT2dInfo, canonical, describe

COPY, TEMPORAL, ZERO, RESIZED, TILED, INFLATE, SPLIT, HEAD = (
    "copied", "copied to temporal attention", "zero", "resized (2D grid)", "tiled over time", "inflated",
    "split from qkv", "from 2D head")  # FRESH is the shared plan's (inflate.mapping)
ACTIONS = (COPY, TEMPORAL, SPLIT, INFLATE, TILED, RESIZED, HEAD, ZERO, FRESH)


@dataclass
class ViTSource:
    """A 2D ViT, canonically named, with where it came from (the fields ``Source2D`` has)."""

    tensors: dict[str, torch.Tensor]
    info: ViT2dInfo
    label: str
    sha256: str
    path: Path | None = None
    kind: str = "file"
    container: str | None = None

    @property
    def depth(self) -> int:
        return self.info.depth

    @property
    def description(self) -> str:
        return f"{self.info.format} {self.info.label} from {self.label}"


def load_source(spec: str | None, *, trust_pickle: bool = False) -> ViTSource:
    from ..io.load import load_checkpoint, sha256_file

    if spec is None:
        raise Inflate3dError("the ViT family needs a 2D ViT checkpoint: give SOURCE (timm, torchvision or "
                             "Hugging Face weights, or a Hugging Face folder)")
    path = Path(spec)
    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    canon, fmt, notes = canonical(ckpt.tensors, spec)
    info = describe(canon, fmt, spec, ckpt.metadata, notes)
    weights = ckpt.path if ckpt.path.is_file() else path
    return ViTSource(canon, info, path.name, sha256_file(weights), path, container=ckpt.container)



def source_overrides(info: ViT2dInfo, arch: Arch) -> dict:
    """The backbone settings the 2D ViT fixes (its widths, depth, heads, patch, eps)."""
    if arch.family == "vivit":
        tt = arch.backbone["tubelet_size"][0]
        return {"hidden_size": info.embed_dims, "num_hidden_layers": info.depth,
                "num_attention_heads": info.num_heads, "intermediate_size": info.hidden,
                "tubelet_size": (tt, info.patch_size, info.patch_size), "layer_norm_eps": info.layer_norm_eps}
    return {"embed_dims": info.embed_dims, "num_transformer_layers": info.depth, "num_heads": info.num_heads,
            "patch_size": info.patch_size, "feedforward_channels": info.hidden, "norm_eps": info.layer_norm_eps}


_L = r"backbone\.transformer_layers\.layers\.(\d+)\."
_TIMESFORMER = [  # (native regex, action, 2D template); {0} is the block index, {t} weight/bias
    (r"backbone\.cls_token", COPY, "cls_token"),
    (r"backbone\.pos_embed", COPY, "pos_embed"),
    (r"backbone\.time_embed", ZERO, None),
    (r"backbone\.patch_embed\.projection\.(weight|bias)", COPY, "patch_embed.proj.{t}"),
    (r"backbone\.norm\.(weight|bias)", COPY, "norm.{t}"),
    (_L + r"attentions\.0\.temporal_fc\.(weight|bias)", ZERO, None),
    (_L + r"attentions\.(?:0|1)\.norm\.(weight|bias)", COPY, "blocks.{0}.norm1.{t}"),
    (_L + r"attentions\.(?:0|1)\.attn\.in_proj_(weight|bias)", COPY, "blocks.{0}.attn.qkv.{t}"),
    (_L + r"attentions\.(?:0|1)\.attn\.out_proj\.(weight|bias)", COPY, "blocks.{0}.attn.proj.{t}"),
    (_L + r"norms\.0\.(weight|bias)", COPY, "blocks.{0}.norm1.{t}"),
    (_L + r"norms\.1\.(weight|bias)", COPY, "blocks.{0}.norm2.{t}"),
    (_L + r"ffns\.0\.norm\.(weight|bias)", COPY, "blocks.{0}.norm2.{t}"),
    (_L + r"ffns\.0\.layers\.0\.0\.(weight|bias)", COPY, "blocks.{0}.mlp.fc1.{t}"),
    (_L + r"ffns\.0\.layers\.1\.(weight|bias)", COPY, "blocks.{0}.mlp.fc2.{t}"),
    (r"cls_head\.fc_cls\.(weight|bias)", HEAD, "head.{t}"),
]
_V = r"backbone\.encoder\.layer\.(\d+)\."
_VIVIT = [
    (r"backbone\.embeddings\.cls_token", COPY, "cls_token"),
    (r"backbone\.embeddings\.position_embeddings", TILED, "pos_embed"),
    (r"backbone\.embeddings\.patch_embeddings\.projection\.(weight)", INFLATE, "patch_embed.proj.{t}"),
    (r"backbone\.embeddings\.patch_embeddings\.projection\.(bias)", COPY, "patch_embed.proj.{t}"),
    (_V + r"attention\.attention\.(?:query|key|value)\.(weight|bias)", SPLIT, "blocks.{0}.attn.qkv.{t}"),
    (_V + r"attention\.output\.dense\.(weight|bias)", COPY, "blocks.{0}.attn.proj.{t}"),
    (_V + r"intermediate\.dense\.(weight|bias)", COPY, "blocks.{0}.mlp.fc1.{t}"),
    (_V + r"output\.dense\.(weight|bias)", COPY, "blocks.{0}.mlp.fc2.{t}"),
    (_V + r"layernorm_before\.(weight|bias)", COPY, "blocks.{0}.norm1.{t}"),
    (_V + r"layernorm_after\.(weight|bias)", COPY, "blocks.{0}.norm2.{t}"),
    (r"backbone\.layernorm\.(weight|bias)", COPY, "norm.{t}"),
    (r"cls_head\.fc_cls\.(weight|bias)", HEAD, "head.{t}"),
]


def plan(target: dict[str, tuple[int, ...]], source: dict[str, tuple[int, ...]], family: str, *,
         head_from_2d: bool, origin: str) -> Plan:
    """Every target tensor's action and 2D source; any shape that does not fit is an error."""
    rows = _VIVIT if family == "vivit" else _TIMESFORMER
    entries, problems = [], []
    for key, shape in target.items():
        for pattern, action, template in rows:
            m = re.fullmatch(pattern, key)
            if m:
                break
        else:
            raise Inflate3dError(f"internal error: no plan row for {key}")
        groups = m.groups()
        src = None if template is None else template.format(*groups[:-1], t=groups[-1] if groups else "")
        if action == HEAD and not head_from_2d:
            action, src = FRESH, None
        elif src is not None and src not in source:
            if key.endswith("in_proj_bias") or (action == SPLIT and key.endswith("bias")):
                # a ViT without qkv bias: the video network's attention has one, zero
                action, src = ZERO, None
            else:
                problems.append(f"{src} missing (needed for {key})")
                continue
        if action == COPY and ".attentions.0." in key and key.replace(".attentions.0.", ".attentions.1.") in target:
            action = TEMPORAL
        if action == COPY and key.endswith("pos_embed") and source[src] != shape:
            action = RESIZED
        if action in (COPY, TEMPORAL, HEAD) and source[src] != shape:
            problems.append(f"{src} {source[src]} does not fit {key} {shape}")
        entries.append(Entry(key, shape, action, src))
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise Inflate3dError(f"{origin}: cannot inflate into this architecture: {shown}")
    used = {e.source for e in entries if e.source}
    fresh = ["cls_head"] if any(e.action == FRESH for e in entries) else []
    return Plan(entries, [k for k in source if k not in used], fresh, ACTIONS)


@dataclass
class ViTInflation:
    arch: Arch
    method: str
    head: str | int | None
    source: ViTSource
    overrides: dict
    plan: Plan
    seed: int

    @property
    def notes(self) -> list[str]:
        """What the source does not record and was assumed (heads, eps), and what was left out."""
        return self.source.info.notes

    def dtype_of(self, entry: Entry) -> torch.dtype:
        return self.source.tensors[entry.source].dtype if entry.source else self.source.tensors["cls_token"].dtype

    def specs(self) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
        return [(e.key, e.shape, self.dtype_of(e)) for e in self.plan.entries]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        src = self.source.tensors
        gen = torch.Generator().manual_seed(self.seed)
        for e in self.plan.entries:
            dtype = self.dtype_of(e)
            if e.action == ZERO:
                t = torch.zeros(e.shape, dtype=dtype)
            elif e.action == FRESH:  # TimeSformerHead: normal(0, 0.02) weight, zero bias
                t = torch.zeros(e.shape, dtype=dtype) if e.key.endswith("bias") else \
                    torch.empty(e.shape).normal_(0.0, 0.02, generator=gen).to(dtype)
            elif e.action == RESIZED:
                t = resize_pos_embed(src[e.source], _grid(e.shape[1] - 1))
            elif e.action == TILED:
                steps = self.overrides["num_frames"] // self.overrides["tubelet_size"][0]
                t = tile_pos_embed(resize_pos_embed(src[e.source], _grid((e.shape[1] - 1) // steps)), steps)
            elif e.action == INFLATE:
                t = tubelet_kernel(src[e.source], e.shape[2], self.method)
            elif e.action == SPLIT:
                which = ("query", "key", "value").index(e.key.split(".")[-2])
                t = src[e.source].chunk(3, 0)[which].clone()
            else:
                t = src[e.source].clone()
            yield e.key, t.contiguous()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.tensors())

    def metadata(self) -> dict[str, str]:
        info = self.source.info
        return {"format": "inflate3d", "inflate3d_version": __version__, "scheme": "mmaction2",
                "arch": self.arch.name, "method": self.method,
                "head": "none" if self.head is None else str(self.head), "source": self.source.label,
                "source_kind": self.source.kind, "source_sha256": self.source.sha256,
                "source_format": info.format, "source_depth": str(info.depth), "seed": str(self.seed),
                "arch_overrides": json.dumps(self.overrides, sort_keys=True), "num_heads": str(info.num_heads),
                "layer_norm_eps": repr(info.layer_norm_eps), "hidden_act": info.hidden_act}


def _grid(n: int) -> int:
    g = int(round(n ** 0.5))
    if g * g != n:
        raise Inflate3dError(f"internal error: {n} patch positions are not a square grid")
    return g


def prepare_vit(source: ViTSource, arch: Arch, *, method: str, head, seed: int, **overrides) -> ViTInflation:
    from ..inflate.inflater import parse_head

    if arch.family == "vivit":
        if method not in TUBELET_METHODS:
            raise Inflate3dError(f"--method {method!r}: a ViViT tubelet kernel is made by "
                                 f"{', '.join(TUBELET_METHODS)}")
    elif method in ("center", "arp"):
        raise Inflate3dError(f"--method {method}: {arch.name} has no temporal kernel (the ViT's weights are "
                             "copied, the temporal attention starts as a no-op); leave out --method")
    else:
        method = "copy"  # TimeSformer holds the 2D weights as they are
    head = parse_head(head)
    info = source.info
    if head == "imagenet":
        if info.num_classes is None:
            raise Inflate3dError(f"{source.label}: has no classifier, so --head imagenet has nothing to keep; "
                                 "use --head none or --head N")
        num_classes = info.num_classes
    else:
        num_classes = head
    settings = {**source_overrides(info, arch), **overrides}
    model = build_model(arch, num_classes=num_classes, device="meta", init=False, **settings)
    target = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in source.tensors.items()}
    p = plan(target, shapes, arch.family, head_from_2d=head == "imagenet", origin=source.label)
    full = {**dict(arch.backbone), **settings}
    return ViTInflation(arch, method, head, source, _jsonable(full), p, seed)


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

