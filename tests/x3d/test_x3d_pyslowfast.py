"""PySlowFast's X3D zoo configs (keys, shapes and config facts of its own models) map completely,
both ways, in PySlowFast's own key order."""
from __future__ import annotations

import pytest
import torch

from inflate3d import build_model
from inflate3d.errors import Inflate3dError
from inflate3d.slowfast.archs import all_archs
from inflate3d.x3d.convert import convert
from inflate3d.x3d.head import MID_CHANNELS
from inflate3d.x3d.network import BASE_CHANNELS, round_width

CONFIGS = ["X3D_XS", "X3D_S", "X3D_M", "X3D_L"]


def zoo_state(entries, seed=0) -> dict[str, torch.Tensor]:
    """Distinct random values for every tensor of a reference key list (counters included; BN
    variances positive)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) if s else torch.randint(1, 1000, (), generator=g) for k, s in entries}
    return {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}


@pytest.mark.parametrize("config", CONFIGS)
def test_zoo_config_maps_every_key_both_ways(config, x3d_reference):
    ref = x3d_reference["pyslowfast"][f"configs/Kinetics/{config}.yaml"]
    facts, arch_name = ref["config"], config.lower()
    arch = all_archs()[arch_name]
    assert (arch.backbone["gamma_d"], arch.backbone["gamma_b"]) == (facts["DEPTH_FACTOR"], facts["BOTTLENECK_FACTOR"])
    assert round_width(BASE_CHANNELS, arch.backbone["gamma_w"]) == round_width(facts["DIM_C1"], facts["WIDTH_FACTOR"])
    assert (MID_CHANNELS, arch.clip[0]) == (facts["DIM_C5"], facts["NUM_FRAMES"])
    state = zoo_state(ref["state_dict"])

    conv = convert(state, source="pyslowfast", target="mmaction2", origin=config, arch=arch_name)
    assert conv.arch_name == arch_name and conv.arch.num_classes == facts["NUM_CLASSES"]
    assert all(n is not None for _, n, _ in conv.key_map) and len(conv.key_map) == len(state)
    expected = build_model(arch_name, num_classes=facts["NUM_CLASSES"], device="meta", init=False).state_dict()
    assert [(k, v.shape) for k, v in conv.tensors.items()] == [(k, v.shape) for k, v in expected.items()]
    for source_key, native_key, _ in conv.key_map:
        want = state[source_key]
        if source_key == "head.lin_5.weight":  # a 1x1x1 conv in PySlowFast, mmaction2's Linear fc1
            want = want[:, :, 0, 0, 0]
        assert torch.equal(conv.tensors[native_key], want), source_key

    back = convert(conv.tensors, source="mmaction2", target="pyslowfast", origin=config)
    assert [[k, list(v.shape)] for k, v in back.tensors.items()] == ref["state_dict"]  # PySlowFast's order
    assert all(torch.equal(back.tensors[k], v) for k, v in state.items())


def test_default_name_for_shared_weights_and_refusals(x3d_reference):
    state = zoo_state(x3d_reference["pyslowfast"]["configs/Kinetics/X3D_M.yaml"]["state_dict"])
    conv = convert(state, source=None, target="mmaction2", origin="m.pyth")
    assert conv.arch_name == "x3d_s"
    assert any("x3d_xs, x3d_s, x3d_m have the same weights" in n and "--arch x3d_xs" in n for n in conv.notes)
    with pytest.raises(Inflate3dError, match="match no X3D architecture x3d_l"):
        convert(state, source=None, target="mmaction2", origin="m.pyth", arch="x3d_l")
    with pytest.raises(Inflate3dError, match="not an X3D architecture"):
        convert(state, source=None, target="mmaction2", origin="m.pyth", arch="i3d_r50")
    with pytest.raises(Inflate3dError, match="--from pytorchvideo, but its keys are pyslowfast"):
        convert(state, source="pytorchvideo", target="mmaction2", origin="m.pyth")
    with pytest.raises(Inflate3dError, match="--to caffe2 has no X3D names"):
        convert(state, source=None, target="caffe2", origin="m.pyth")
    del state["s3.pathway0_res2.branch2.a_bn.bias"]
    with pytest.raises(Inflate3dError, match="match no X3D architecture"):
        convert(state, source=None, target="mmaction2", origin="m.pyth")


def test_pyslowfast_to_pytorchvideo_folds_and_proves_in_function(x3d_reference):
    state = zoo_state(x3d_reference["pyslowfast"]["configs/Kinetics/X3D_XS.yaml"]["state_dict"])
    to_pv = convert(state, source=None, target="pytorchvideo", origin="xs.pyth")
    assert "blocks.1.res_blocks.0.branch1_norm.weight" not in to_pv.tensors
    assert "blocks.2.res_blocks.0.branch1_norm.weight" in to_pv.tensors  # width changes: pytorchvideo keeps it
    back = convert(to_pv.tensors, source=None, target="pyslowfast", origin="pv.pyth")
    differ = sorted(k for k, v in state.items() if not torch.equal(back.tensors[k], v))
    assert differ == sorted(["s2.pathway0_res0.branch1.weight", "s2.pathway0_res0.branch2.c_bn.bias"]
                            + [f"s2.pathway0_res0.branch1_bn.{f}" for f in
                               ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")])
    assert "folded again they equal" in to_pv.round_trip_in_function(state, back.tensors, differ)
