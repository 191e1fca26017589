"""Where the 2D weights come from: a file, torchvision's hub cache, or a seeded initialisation.

Every source says plainly what it is (``kind``), so nobody mistakes a seeded network for ImageNet
weights; the kind and the sha256 go into the output's metadata.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import Inflate3dError, InvalidInputError
from ..io.load import in_background, load_checkpoint
from .resnet2d import infer_depth

# torchvision's published ImageNet weights, by (depth, weights name). The 8 hex digits in each file
# name are the start of its sha256 (torchvision checks them on download).
TORCHVISION_FILES: dict[tuple[int, str], str] = {
    (18, "IMAGENET1K_V1"): "resnet18-f37072fd.pth",
    (34, "IMAGENET1K_V1"): "resnet34-b627a593.pth",
    (50, "IMAGENET1K_V1"): "resnet50-0676ba61.pth",
    (50, "IMAGENET1K_V2"): "resnet50-11ad3fa6.pth",
    (101, "IMAGENET1K_V1"): "resnet101-63fe2227.pth",
    (101, "IMAGENET1K_V2"): "resnet101-cd907fc2.pth",
    (152, "IMAGENET1K_V1"): "resnet152-394f9c45.pth",
    (152, "IMAGENET1K_V2"): "resnet152-f82ba261.pth",
}
DOWNLOAD_ROOT = "https://download.pytorch.org/models/"
SEEDED = "seeded-init"
IMAGENET = "torchvision-imagenet"
FILE = "file"
MEMORY = "in-memory"  # a state dict or a module handed over in Python


@dataclass
class Source2D:
    tensors: dict[str, torch.Tensor]
    label: str  # what the user named, without absolute paths (goes into metadata)
    kind: str  # 'file' | 'torchvision-imagenet' | 'seeded-init' | 'in-memory'
    sha256: str
    depth: int | None  # None: a 2D module whose names are not torchvision's (its structure is used)
    path: Path | None = None
    container: str | None = None
    prefix: str | None = None
    _tensors_sha256: str | Callable[[], str] | None = field(default=None, repr=False)

    @property
    def tensors_sha256(self) -> str:
        """The weights' identity whatever their container: the same tensors in a .pth, a
        safetensors file or under another wrapper have the same digest."""
        if self._tensors_sha256 is None:
            self._tensors_sha256 = tensors_sha256(self.tensors)
        elif callable(self._tensors_sha256):  # hashed in the background: wait for it
            self._tensors_sha256 = self._tensors_sha256()
        return self._tensors_sha256

    @property
    def description(self) -> str:
        if self.kind == SEEDED:
            return (f"seeded ResNet-{self.depth} initialisation (BN statistics calibrated on random "
                    "input) - NOT ImageNet weights")
        if self.kind == IMAGENET:
            return f"torchvision ImageNet weights ({self.label})"
        if self.kind == MEMORY:
            return self.label
        wrapped = f", unwrapped from '{self.container}'" if self.container else ""
        prefixed = f", '{self.prefix}' prefix stripped" if self.prefix else ""
        return f"file {self.label}{wrapped}{prefixed}"


def _get_sha256(self: Source2D) -> str:
    value = self.__dict__["_sha256"]
    if callable(value):  # hashed in the background while the work went on: wait for it now
        value = self.__dict__["_sha256"] = value()
    return value


def _set_sha256(self: Source2D, value) -> None:
    self.__dict__["_sha256"] = value


# ``sha256`` may be handed over as a call that returns it (a file hashed on a thread as it was
# read); it is resolved on first use, so the hash overlaps with planning and writing.
Source2D.sha256 = property(_get_sha256, _set_sha256, doc="the file's sha256 (or the tensors', in memory)")


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_source(spec, *, depth: int | None = None, trust_pickle: bool = False, seed: int = 0,
                   prefetched=None) -> Source2D:
    """The 2D ResNet to inflate, from any of:

    - a file path (``str`` or ``Path``): a torchvision-style state dict, plain or wrapped;
    - ``'torchvision:resnetNN[:WEIGHTS]'`` from the torch hub cache;
    - ``'seeded:resnetNN:SEED'``: a seeded initialisation (NOT ImageNet weights);
    - a state dict (``{name: tensor}``) or a 2D ``nn.Module`` in memory (a module whose names are
      not torchvision's has ``depth=None``: ``inflate_into`` uses its structure);
    - ``None``: torchvision's ImageNet weights of ``depth`` if cached, else a seeded one.

    The depth is read from the weights; ``depth`` is needed only for ``None``. ``prefetched``: an
    ``io.prefetch.Prefetch`` of the file path ``spec``, started before torch was imported."""
    if isinstance(spec, torch.nn.Module):  # its depth may not be readable: inflate_into uses its structure
        tensors = {k: v.detach() for k, v in spec.state_dict().items()}
        depth_read = None
        with contextlib.suppress(Inflate3dError):
            depth_read = infer_depth(tensors, type(spec).__name__)
        return Source2D(tensors, f"a 2D {type(spec).__name__} module", MEMORY, tensors_sha256(tensors),
                        depth_read)
    if isinstance(spec, Mapping):
        return _from_tensors(spec, "in-memory state dict")
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if spec is not None and not isinstance(spec, str):
        raise InvalidInputError(f"source of type {type(spec).__name__}: give a path, a state dict, an "
                                "nn.Module, 'torchvision:resnetNN' or 'seeded:resnetNN:SEED'")
    if spec is None:
        if depth is None:
            raise InvalidInputError("no source and no depth: give a source, or the depth (18, 34, 50, 101, "
                                    "152) of the default one")
        cached = hub_checkpoint_dir() / TORCHVISION_FILES[(depth, "IMAGENET1K_V1")]
        if cached.is_file():
            return _from_file(cached, label=f"torchvision:resnet{depth}:IMAGENET1K_V1", kind=IMAGENET,
                              trust_pickle=trust_pickle)
        return seeded_source(depth, seed=seed)
    if spec.startswith("torchvision:"):
        return _torchvision_source(spec, trust_pickle=trust_pickle)
    if spec.startswith("seeded:"):
        return _seeded_spec(spec)
    path = Path(spec)
    return _from_file(path, label=path.name, kind=FILE, trust_pickle=trust_pickle, prefetched=prefetched)


def _from_tensors(tensors: Mapping, label: str) -> Source2D:
    tensors = {str(k): v for k, v in tensors.items()}
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidInputError(f"{label}: entries that are not tensors: {', '.join(bad[:6])}")
    tensors = {k: v.detach() for k, v in tensors.items()}
    return Source2D(tensors, label, MEMORY, tensors_sha256(tensors), infer_depth(tensors, label))


def _from_file(path: Path, *, label: str, kind: str, trust_pickle: bool, prefetched=None) -> Source2D:
    """The file is read once: its sha256 is computed on a thread from the bytes as they are read,
    and the tensors' digest on another once they are loaded (or both by a prefetch, while torch
    was imported); both are waited for where they are first used (the output's metadata), so they
    overlap with planning and inflating."""
    ckpt = load_checkpoint(path, trust_pickle=trust_pickle, digest=True, prefetched=prefetched)
    depth = infer_depth(ckpt.tensors, str(path))
    digest = ckpt.tensors_sha256 or in_background(tensors_sha256, dict(ckpt.tensors))
    return Source2D(ckpt.tensors, label, kind, ckpt.sha256, depth, path=path, container=ckpt.container,
                    prefix=ckpt.prefix, _tensors_sha256=digest)


def _torchvision_source(spec: str, *, trust_pickle: bool) -> Source2D:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 else ""
    weights = parts[2] if len(parts) > 2 else "IMAGENET1K_V1"
    depth = int(name[len("resnet"):]) if name.startswith("resnet") and name[6:].isdigit() else None
    if len(parts) > 3 or (depth, weights) not in TORCHVISION_FILES:
        known = ", ".join(f"torchvision:resnet{d}:{w}" for d, w in TORCHVISION_FILES)
        raise Inflate3dError(f"{spec}: unknown torchvision source; choose one of {known}")
    filename = TORCHVISION_FILES[(depth, weights)]
    path = hub_checkpoint_dir() / filename
    if not path.is_file():
        _download(DOWNLOAD_ROOT + filename, path, spec)
    return _from_file(path, label=f"torchvision:resnet{depth}:{weights}", kind=IMAGENET,
                      trust_pickle=trust_pickle)


def _download(url: str, path: Path, spec: str) -> None:
    hint = f"put {path.name} (from {url}) at {path}"
    if os.environ.get("INFLATE3D_OFFLINE"):
        raise Inflate3dError(f"{spec}: not in the torch hub cache and INFLATE3D_OFFLINE is set; {hint}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=15) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                h.update(block)
                f.write(block)
        expected = path.stem.split("-")[-1]
        if not h.hexdigest().startswith(expected):
            raise Inflate3dError(f"{spec}: downloaded file's sha256 does not start with {expected}; {hint}")
        os.replace(tmp, path)
    except (OSError, ValueError) as e:
        raise Inflate3dError(f"{spec}: not in the torch hub cache and the download failed "
                             f"({getattr(e, 'reason', e)}); {hint}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _seeded_spec(spec: str) -> Source2D:
    parts = spec.split(":")
    if len(parts) == 3 and parts[1].startswith("resnet") and parts[1][6:].isdigit() and parts[2].isdigit():
        depth = int(parts[1][6:])
        if (depth, "IMAGENET1K_V1") in TORCHVISION_FILES:
            return seeded_source(depth, seed=int(parts[2]))
    raise Inflate3dError(f"{spec}: expected seeded:resnetNN:SEED with NN in 18, 34, 50, 101, 152")


def seeded_source(depth: int, *, seed: int = 0, calibration_batches: int = 4) -> Source2D:
    """A torchvision ResNet initialised from ``seed`` whose BN running statistics are set by
    forwarding random images in train mode, so activations keep a sane scale through the net
    (with untouched statistics a deep ResNet's activations explode)."""
    import torchvision

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed reduction order: the same seed gives the same bytes
    try:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        net = getattr(torchvision.models, f"resnet{depth}")()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average over the calibration batches
        net.train()
        with torch.no_grad():
            for _ in range(calibration_batches):
                net(torch.randn(4, 3, 64, 64))
        torch.random.set_rng_state(gen_state)
    finally:
        torch.set_num_threads(threads)
    tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return Source2D(tensors, f"seeded:resnet{depth}:{seed}", SEEDED, tensors_sha256(tensors), depth)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of names, dtypes, shapes and bytes, in name order (safetensors files sort their
    keys; a state dict does not), so it identifies the weights and not their container."""
    from ..io.save import tensor_bytes

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(tensor_bytes(t))
    return h.hexdigest()
