"""``inflate3d inspect`` of an X3D file in each scheme reads its structure and matches it against
the shipped shape table, without importing torch, and says exactly what the loaded tensors say
(the ``inspect_without_torch`` fixture runs the real command in a subprocess and compares)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from x3d_peers import perturb_bn

from inflate3d import build_model
from inflate3d.x3d import family

pv_hub = pytest.importorskip("pytorchvideo.models.hub")


def _native(num_classes=5, seed=0, **overrides):
    torch.manual_seed(seed)
    model = build_model("x3d_xs", num_classes=num_classes, **overrides)
    perturb_bn(model, seed + 1)  # no identity shortcut BN: pytorchvideo's files fold it
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _converted(native, target):
    return family.convert(native, source=None, target=target, origin="x", arch="x3d_xs").tensors


def test_every_scheme_is_described_without_torch(tmp_path, inspect_without_torch):
    native = _native()
    files = {"mmaction2": tmp_path / "mm.safetensors", "pyslowfast": tmp_path / "X3D_XS.pyth",
             "pytorchvideo": tmp_path / "pv.safetensors"}
    save_file(native, files["mmaction2"])
    torch.save({"model_state": _converted(native, "pyslowfast"), "epoch": 3}, files["pyslowfast"])
    save_file(_converted(native, "pytorchvideo"), files["pytorchvideo"])
    for scheme, path in files.items():
        doc = inspect_without_torch(path)
        arch = doc["architecture"]
        assert doc["scheme"] == scheme and doc["family"] == "x3d", scheme
        assert arch["matches"] == "x3d_s" and arch["head"] == "conv5 432 -> fc1 2048 -> 5 classes", scheme
    assert any("identity BN was inserted" in n for n in inspect_without_torch(files["pytorchvideo"])
               ["architecture"]["notes"])


def test_pytorchvideos_own_network_is_described_without_torch(tmp_path, inspect_without_torch):
    torch.manual_seed(0)
    model = pv_hub.x3d_xs(pretrained=False)
    perturb_bn(model, seed=1)
    torch.save({"model_state": model.state_dict()}, tmp_path / "X3D_XS.pyth")
    doc = inspect_without_torch(tmp_path / "X3D_XS.pyth")
    assert doc["scheme"] == "pytorchvideo" and doc["architecture"]["matches"] == "x3d_s"


@pytest.mark.parametrize("scheme", ["mmaction2", "pyslowfast"])
def test_a_head_bias_and_a_bare_backbone_are_described_without_torch(tmp_path, inspect_without_torch, scheme):
    with_bias = _native(fc1_bias=True)
    bare = _native(num_classes=None)
    for name, native in (("bias", with_bias), ("bare", bare)):
        path = tmp_path / f"{name}.safetensors"
        save_file(native if scheme == "mmaction2" else _converted(native, scheme), path)
        arch = inspect_without_torch(path)["architecture"]
        assert arch["matches"] == ("x3d_s with fc1_bias=True" if name == "bias" else "x3d_s"), name
        assert (arch["head"] == "none (backbone only)") == (name == "bare")


def test_an_x3d_no_named_arch_has_is_reported_without_torch(tmp_path, inspect_without_torch):
    """Shapes no tabled configuration has (a wider X3D): the table misses, and inspection reports
    the mismatch as before, still without torch (the candidates are the named archs)."""
    native = _native(gamma_w=2.0)
    save_file(native, tmp_path / "wide.safetensors")
    arch = inspect_without_torch(tmp_path / "wide.safetensors")["architecture"]
    assert arch["matches"] is None and "match no X3D architecture" in arch["why"]
