"""The tiny timm ViT file the ViT-family tests share."""
from __future__ import annotations

import pytest
from safetensors.torch import save_file

from vit_peers import HEADS, timm_vit


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    """(timm ViT, its safetensors file with the head count recorded)."""
    vit = timm_vit()
    path = tmp_path_factory.mktemp("vit") / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, path, metadata={"num_heads": str(HEADS)})
    return vit, path
