"""``inflate3d inspect`` of a Video Swin (mmaction2, torchvision) or a 2D Swin (every codebase's
names) reads the structure alone, without importing torch, and says exactly what the loaded
tensors say (the ``inspect_without_torch`` fixture runs the real command in a subprocess)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from swin_models import OVERRIDES, SIZE, TINY, microsoft_form, mmpretrain_form, perturb, timm_swin

from inflate3d import build_model
from inflate3d.swin import family


def _native(num_classes):
    torch.manual_seed(0)
    model = perturb(build_model("swin3d_t", num_classes=num_classes, **OVERRIDES), 0)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("num_classes", [5, None])
def test_video_swin_in_each_scheme_is_described_without_torch(tmp_path, inspect_without_torch, num_classes):
    native = _native(num_classes)
    torch.save({"state_dict": native, "meta": {}}, tmp_path / "mm.pth")
    bare = {k[len("backbone."):]: v for k, v in native.items() if k.startswith("backbone.")}
    save_file(bare, tmp_path / "backbone.safetensors")  # a bare backbone, as mmaction2 saves one
    tv = family.convert(native, source=None, target="torchvision", origin="x").tensors
    save_file({k: v.contiguous() for k, v in tv.items()}, tmp_path / "tv.safetensors")
    for name, scheme in (("mm.pth", "mmaction2"), ("backbone.safetensors", "mmaction2"), ("tv.safetensors", "torchvision")):
        doc = inspect_without_torch(tmp_path / name)
        arch = doc["architecture"]
        assert doc["scheme"] == scheme and doc["family"] == "swin", name
        assert arch["matches"].startswith("swin3d_t with ") and arch["window_size"] == "8x4x4", name


def test_2d_swins_of_every_codebase_are_described_without_torch(tmp_path, inspect_without_torch):
    pytest.importorskip("timm")
    from torchvision.models.swin_transformer import SwinTransformer
    from transformers import SwinConfig, SwinForImageClassification

    net = timm_swin()
    ms = microsoft_form(net)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "timm.safetensors")
    torch.save({"model": ms}, tmp_path / "microsoft.pth")
    torch.save({"state_dict": mmpretrain_form(ms), "meta": {}}, tmp_path / "mmpretrain.pth")  # merges reordered
    torch.manual_seed(3)
    tv = perturb(SwinTransformer([4, 4], TINY["embed_dim"], list(TINY["depths"]), list(TINY["num_heads"]), [4, 4],
                                 num_classes=10), 3)
    save_file(dict(tv.state_dict()), tmp_path / "torchvision.safetensors")
    config = SwinConfig(image_size=SIZE, embed_dim=TINY["embed_dim"], depths=list(TINY["depths"]),
                        num_heads=list(TINY["num_heads"]), window_size=4, num_labels=10)
    torch.manual_seed(4)
    hf = perturb(SwinForImageClassification(config), 4)  # q, k and v apart: merged on shape records
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, tmp_path / "huggingface.safetensors")
    for name in ("timm", "microsoft", "mmpretrain", "torchvision", "huggingface"):
        path = next(tmp_path.glob(f"{name}.*"))
        doc = inspect_without_torch(path)
        arch = doc["architecture"]
        assert doc["scheme"] == f"swin2d-{name}" and arch["family"] == f"2D Swin ({name})", name
        assert arch["depths"] == [2, 2, 2] and arch["head_classes"] == 10, name
