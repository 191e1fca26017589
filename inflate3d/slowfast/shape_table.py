"""The named ResNet-family and X3D architectures' state-dict shapes and the ResNet networks' setting
defaults, as shipped data, so that ``inspect`` can match a checkpoint to a named architecture
without importing torch (a meta build imports it: about 1.5 s of a 0.2 s command).

The table (``shape_table.bin``) is generated from the networks themselves:

    .venv/bin/python -m inflate3d.slowfast.shape_table

Each entry is keyed by the whole ``Arch`` record and the overrides, so an arch whose
definition changed misses the table and is built as before (correct, only slower); a test
regenerates the table and fails when it is stale. Overrides that never change a shape (strides,
pools: ``NEUTRAL``, each checked by a test in every family) are left out of the key.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("shape_table.bin")
RESNET_FAMILIES = ("resnet3d", "slowfast", "tsm", "csn", "r2plus1d")  # the ones this package builds
# every family whose named archs the table holds: X3D's too (a family package's, ``inflate3d.x3d``)
FAMILIES = RESNET_FAMILIES + ("x3d",)
# settings that move no weight: strides, pools, dilations, rates, training switches
NEUTRAL = frozenset({"conv1_stride_t", "conv1_stride_s", "pool1_stride_t", "pool1_stride_s", "with_pool1",
                     "with_pool2", "temporal_strides", "spatial_strides", "dilations", "speed_ratio",
                     "resample_rate", "norm_eval", "frozen_stages", "zero_init_residual", "with_cp"})
HEAD_CLASSES = 400  # the entries' heads are built with this many classes; others are derived


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def neutral_for(arch) -> frozenset:
    """The settings left out of ``arch``'s key. None for a C2D stored 2-D (a temporal stride turns
    its stem 3-D: a test found it), nor for another family's arch (X3D's network is not a ResNet's:
    every override is in its key)."""
    return frozenset() if arch.backbone.get("conv_2d") or arch.family not in RESNET_FAMILIES else NEUTRAL


def shape_key(arch, overrides: Mapping[str, Any]) -> str:
    """The arch's whole record and its shape-relevant overrides, as text (the key itself, not a
    digest of it: no two configurations can share one)."""
    neutral = neutral_for(arch)
    kept = {}
    for k, v in overrides.items():
        if k in neutral:
            continue
        if isinstance(v, Mapping):  # a SlowFast pathway's settings
            v = {pk: pv for pk, pv in v.items() if pk not in neutral}
            if not v:
                continue
        kept[k] = v
    return repr(arch) + " " + json.dumps(_plain(kept), sort_keys=True)


@lru_cache(maxsize=1)
def _table() -> dict:
    """{'index': {key as JSON text: [start, length]}, 'defaults': {...}, 'base': first entry's
    offset}. The file is one JSON line (defaults and index), then each entry zlib-compressed on its
    own: a lookup reads and inflates one entry (~35 KB of JSON), not the whole table (1.7 MB)."""
    try:
        with open(PATH, "rb") as f:
            head = f.readline()
        table = json.loads(head)
        return {"index": table["index"], "defaults": table["defaults"], "base": len(head)}
    except (OSError, ValueError, KeyError):  # no table (a source checkout mid-change): every lookup misses
        return {"index": {}, "defaults": {}, "base": 0}


def _entry(key: str) -> str | None:
    """One entry's JSON text, or None when the table does not hold ``key``."""
    import zlib

    table = _table()
    where = table["index"].get(key)
    if where is None:
        return None
    start, length = where
    with open(PATH, "rb") as f:
        f.seek(table["base"] + start)
        return zlib.decompress(f.read(length)).decode()


def read_all() -> dict:
    """The whole table as ``generate`` makes it (for the test that it is not stale)."""
    return {"entries": {k: _entry(k) for k in _table()["index"]}, "defaults": _table()["defaults"]}


def lookup(arch, num_classes: int | None, overrides: Mapping[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """{key: shape} as ``build_model(arch, num_classes=..., **overrides)`` has them, in order, or
    None when the table does not hold this configuration."""
    entry = _entry(json.dumps(shape_key(arch, overrides)))
    if entry is None:
        return None
    body, head = json.loads(entry)
    out = {k: tuple(s) for k, s in body}
    if num_classes is not None:
        out.update((k, tuple(num_classes if d == "N" else d for d in s)) for k, s in head)
    return out


def default_of(owner: str, key: str) -> tuple[bool, Any]:
    """(found, value): the default of setting ``key`` of a backbone class (``owner``: a family,
    'pathway', 'slow_pathway' or 'fast_pathway'), as the networks' signatures give it."""
    defaults = _table()["defaults"].get(owner, {})
    if key not in defaults:
        return False, None
    return True, _tuples(defaults[key])


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# --- generation (imports torch) -------------------------------------------------------------------

def variants(arch) -> list[dict]:
    """The configurations a checkpoint of a named arch most often has: as named; SlowFast with
    PySlowFast's / pytorchvideo's conv+BN fusion; X3D with a bias on the head's fc1 (what
    ``x3d.convert.match_arch`` tries when a file has one)."""
    out: list[dict] = [{}]
    if arch.family == "slowfast":
        out.append({"slow_pathway": {"lateral_norm": True}})
    if arch.family == "x3d":
        out.append({"fc1_bias": True})
    return out


def _defaults() -> dict[str, dict[str, Any]]:
    import inspect

    from .archs import _backbone_class
    from .pathway import ResNet3dPathway
    from .slowfast import FAST_DEFAULTS, SLOW_DEFAULTS

    def literal(value: Any) -> bool:
        try:
            return json.loads(json.dumps(_plain(value))) == _plain(value) and not callable(value)
        except (TypeError, ValueError):
            return False

    def signature_defaults(cls) -> dict[str, Any]:
        """As ``setting_of`` reads them: the first class in the MRO with a default for the name."""
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.name not in seen and p.default is not inspect.Parameter.empty:
                        seen.add(p.name)
                        if literal(p.default):
                            out[p.name] = _plain(p.default)
        return out

    table = {family: signature_defaults(_backbone_class(family)) for family in RESNET_FAMILIES}
    table["pathway"] = signature_defaults(ResNet3dPathway)
    for name, given in (("slow_pathway", SLOW_DEFAULTS), ("fast_pathway", FAST_DEFAULTS)):
        if not all(literal(v) for v in given.values()):  # a missing one would fall through to the pathway's
            raise AssertionError(f"{name} defaults must be plain values")
        table[name] = {k: _plain(v) for k, v in given.items()}
    return table


def generate() -> dict:
    """The table, from meta builds of every arch and variant of ``FAMILIES``."""
    from .archs import all_archs, build_model

    entries = {}
    for arch in all_archs().values():  # the family packages' archs registered too
        if arch.family not in FAMILIES:
            continue
        for overrides in variants(arch):
            body = build_model(arch, num_classes=None, device="meta", init=False, **overrides).state_dict()
            full = build_model(arch, num_classes=HEAD_CLASSES, device="meta", init=False, **overrides).state_dict()
            other = build_model(arch, num_classes=HEAD_CLASSES + 1, device="meta", init=False, **overrides).state_dict()
            if list(full)[:len(body)] != list(body):
                raise AssertionError(f"{arch.name}: the head's keys do not follow the backbone's")
            head = []
            for k in list(full)[len(body):]:
                a, b = tuple(full[k].shape), tuple(other[k].shape)
                head.append([k, ["N" if x != y else x for x, y in zip(a, b)]])
            entries[json.dumps(shape_key(arch, overrides))] = json.dumps(
                [[[k, list(v.shape)] for k, v in body.items()], head], separators=(",", ":"))
    return {"entries": entries, "defaults": _defaults()}


def write(path: Path = PATH) -> None:
    import zlib

    table = generate()
    index, blobs, at = {}, [], 0
    for key, entry in sorted(table["entries"].items()):
        blob = zlib.compress(entry.encode(), 9)
        index[key] = [at, len(blob)]
        blobs.append(blob)
        at += len(blob)
    head = json.dumps({"defaults": table["defaults"], "index": index}, sort_keys=True, separators=(",", ":"))
    with open(path, "wb") as f:  # no timestamp: the same networks give the same bytes
        f.write(head.encode() + b"\n" + b"".join(blobs))


if __name__ == "__main__":
    write()
    _table.cache_clear()
    print(f"wrote {PATH} ({PATH.stat().st_size:,} bytes, {len(_table()['index'])} configurations)")
