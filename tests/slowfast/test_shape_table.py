"""The shipped shape table (``slowfast/shape_table``): what inspect matches checkpoints against
without torch. It must equal the networks it stands for, and miss rather than lie."""
from __future__ import annotations

import json

import pytest

from inflate3d.slowfast import shape_table
from inflate3d.slowfast.archs import ARCHS, all_archs, build_model, route_settings


def _built(arch, num_classes, **overrides):
    model = build_model(arch, num_classes=num_classes, device="meta", init=False, **overrides)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_the_shipped_table_is_what_the_networks_generate():
    """Stale after a change to a network or an arch: regenerate with
    ``python -m inflate3d.slowfast.shape_table``."""
    shape_table._table.cache_clear()
    generated = shape_table.generate()
    generated["defaults"] = json.loads(json.dumps(generated["defaults"]))  # tuples as the file has them
    assert shape_table.read_all() == generated


@pytest.mark.parametrize("num_classes", [7])  # another class count than the table's: the head is derived
def test_every_entry_equals_a_build(num_classes):
    checked, families = 0, set()
    for arch in all_archs().values():
        if arch.family not in shape_table.FAMILIES:
            continue
        for overrides in shape_table.variants(arch):
            got = shape_table.lookup(arch, num_classes, overrides)
            want = _built(arch, num_classes, **overrides)
            assert got == want and list(got) == list(want), (arch.name, overrides)
            checked += 1
            families.add(arch.family)
    assert checked >= 43 and families == set(shape_table.FAMILIES)


def test_a_changed_arch_misses_the_table():
    arch = ARCHS["i3d_r50"]
    assert shape_table.lookup(arch, 400, {}) is not None
    assert shape_table.lookup(arch.replace(clip=(8, 224, 224)), 400, {}) is None
    assert shape_table.lookup(arch, 400, {"base_channels": 32}) is None  # not a tabled configuration
    x3d = all_archs()["x3d_s"]
    assert shape_table.lookup(x3d, 400, {"fc1_bias": True}) is not None
    # another family's network: no setting is taken as neutral, every override misses
    assert shape_table.lookup(x3d, 400, {"spatial_strides": (1, 1, 1, 1)}) is None


ALTERNATIVES = {"conv1_stride_t": 2, "conv1_stride_s": 1, "pool1_stride_t": 2, "pool1_stride_s": 1,
                "with_pool1": None, "with_pool2": None, "temporal_strides": (1, 2, 2, 2),
                "spatial_strides": (1, 1, 1, 1), "dilations": (1, 1, 2, 2), "speed_ratio": 4, "resample_rate": 4,
                "norm_eval": None, "frozen_stages": 2, "zero_init_residual": None, "with_cp": None}


@pytest.mark.parametrize("name, at_least", [
    ("i3d_r50", 10), ("i3d_r50_nl_dot_product", 10), ("slowonly_r50", 10), ("tsm_r50", 1),
    ("slowfast_r50_4x16", 10), ("ircsn_r152", 8), ("r2plus1d_r34", 8), ("c2d_r50_8x8", 10), ("c2d_r50", 0)])
def test_neutral_settings_move_no_weight(name, at_least):
    """What the table's key leaves out must not change a shape, in any family (a C2D stored 2-D
    keeps every setting in its key: ``conv1_stride_t=2`` makes its stem 3-D)."""
    arch = ARCHS[name]
    base = _built(arch, 400)
    tried = 0
    assert set(ALTERNATIVES) == shape_table.NEUTRAL
    for key, alt in ALTERNATIVES.items():
        if key not in shape_table.neutral_for(arch):
            continue
        for where in ("top", "slow_pathway", "fast_pathway"):
            if where != "top" and arch.family != "slowfast":
                continue
            current = (arch.backbone.get(where, {}) if where != "top" else arch.backbone).get(key)
            value = (not current) if alt is None else alt
            overrides = {key: value} if where == "top" else {where: {key: value}}
            try:
                route_settings(arch, overrides)
                shapes = _built(arch, 400, **overrides)
            except (KeyError, ValueError):  # the family does not take it there, or not that value
                continue
            assert shapes == base, (name, where, key, value)
            tried += 1
    assert tried >= at_least
