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


_INSPECT = """
import sys
from inflate3d.cli import main
sys.argv = ['inflate3d', 'inspect', *sys.argv[1:], '--json']
try:
    main()
except SystemExit as e:
    print('EXIT', e.code, file=sys.stderr)
print('TORCH', 'torch' in sys.modules, file=sys.stderr)
"""


@pytest.fixture
def inspect_without_torch():
    """inspect(path) -> the document ``inflate3d inspect PATH --json`` prints, run in a subprocess
    (what a user runs), after checking that the command did not import torch and that its document
    is the description from the loaded tensors (``describe_checkpoint(path, values=True)``), save
    how each was read."""
    import subprocess
    import sys

    from inflate3d.inflate.describe import describe_checkpoint

    def inspect(path) -> dict:
        out = subprocess.run([sys.executable, "-c", _INSPECT, str(path)], capture_output=True, text=True)
        lines = out.stderr.strip().splitlines()
        assert lines[-2] in ("EXIT 0", "EXIT None"), out.stderr
        assert lines[-1] == "TORCH False", f"{path}: inspect imported torch"
        doc = json.loads(out.stdout)
        assert doc.pop("ok") is True and doc.pop("read") == "structure"
        doc.pop("schema")  # the JSON envelope's version
        slow = describe_checkpoint(path, values=True)
        assert slow.pop("read") == "tensors" and slow.pop("non_finite") == []
        assert doc == json.loads(json.dumps(slow)), path
        return doc

    return inspect


@pytest.fixture
def reads(monkeypatch):
    """(opens per path, whole loads per path, bytes read per (path, key)): what a command reads of
    its inputs, counted on the real readers (``io.lazy``'s files, ``io.load.load_checkpoint``)."""
    import collections

    from inflate3d.io import lazy, load

    opened, loads, got = collections.Counter(), collections.Counter(), collections.Counter()
    st_init, st_get, load_ckpt = lazy.SafetensorsFile.__init__, lazy.SafetensorsFile.get, load.load_checkpoint

    def init(self, path):
        opened[str(path)] += 1
        st_init(self, path)

    def get(self, key, out=None):
        t = st_get(self, key, out)
        got[str(self.path), key] += t.numel() * t.element_size()
        return t

    def load_checkpoint(path, **kw):
        loads[str(path)] += 1
        return load_ckpt(path, **kw)

    zip_init, zip_get = lazy.TorchZipFile.__init__, lazy.TorchZipFile.get

    def init_zip(self, path):
        opened[str(path)] += 1
        zip_init(self, path)

    def get_zip(self, key):
        t = zip_get(self, key)
        got[str(self.path), key] += t.numel() * t.element_size()
        return t

    monkeypatch.setattr(lazy.SafetensorsFile, "__init__", init)
    monkeypatch.setattr(lazy.SafetensorsFile, "get", get)
    monkeypatch.setattr(lazy.TorchZipFile, "__init__", init_zip)
    monkeypatch.setattr(lazy.TorchZipFile, "get", get_zip)
    monkeypatch.setattr(load, "load_checkpoint", load_checkpoint)
    return opened, loads, got
