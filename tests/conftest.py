"""Shared fixtures: seeded 2D sources (never downloaded), the reference data, a private hub cache."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _offline_private_hub(tmp_path_factory, monkeypatch):
    """No test may touch the network or the machine's own torch hub cache."""
    monkeypatch.setenv("INFLATE3D_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


@pytest.fixture(scope="session")
def mmaction2_reference() -> dict:
    return json.loads((DATA / "mmaction2_state_dicts.json").read_text())["archs"]


@pytest.fixture(scope="session")
def pyslowfast_reference() -> dict:
    return json.loads((DATA / "pyslowfast_state_dicts.json").read_text())


_SOURCES: dict[int, object] = {}


@pytest.fixture(scope="session")
def seeded():
    """seeded(depth) -> Source2D, built once per depth per session."""
    from inflate3d.inflate.sources import seeded_source

    def get(depth: int):
        if depth not in _SOURCES:
            _SOURCES[depth] = seeded_source(depth, seed=depth)
        return _SOURCES[depth]

    return get


@pytest.fixture(scope="session")
def r18_file(tmp_path_factory, seeded) -> Path:
    """A seeded torchvision ResNet-18 saved as plain .pth (the usual published form)."""
    path = tmp_path_factory.mktemp("src") / "resnet18.pth"
    torch.save(seeded(18).tensors, path)
    return path


@pytest.fixture(scope="session")
def r50_file(tmp_path_factory, seeded) -> Path:
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("src") / "resnet50.safetensors"
    save_file(seeded(50).tensors, str(path))
    return path
