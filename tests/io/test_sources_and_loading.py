"""2D sources in every container form, torchvision's hub cache, and clear errors for bad input."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from inflate3d.errors import Inflate3dError
from inflate3d.inflate import prepare, resolve_source
from inflate3d.inflate.sources import TORCHVISION_FILES, hub_checkpoint_dir
from inflate3d.io.load import load_checkpoint


def _forms(tensors):
    prefixed = {f"module.{k}": v for k, v in tensors.items()}
    return {
        "plain.pth": (tensors, {}),
        "state_dict.pth": ({"state_dict": tensors, "meta": {"epoch": 3}}, {}),
        "model.pt": ({"model": tensors, "optimizer": {"lr": 0.1}}, {}),
        "model_state.pyth": ({"model_state": prefixed, "epoch": 1}, {}),
        "module_prefix.pth": (prefixed, {}),
        "legacy.pth": (tensors, {"_use_new_zipfile_serialization": False}),
    }


def test_every_container_form_inflates_identically(tmp_path, seeded):
    src = seeded(18)
    reference = prepare(src, "i3d_r18").state_dict()
    paths = []
    for name, (obj, kwargs) in _forms(src.tensors).items():
        paths.append(tmp_path / name)
        torch.save(obj, paths[-1], **kwargs)
    paths.append(tmp_path / "weights.safetensors")
    save_file(src.tensors, str(paths[-1]))
    for path in paths:
        loaded = resolve_source(str(path), depth=18)
        assert loaded.depth == 18 and loaded.kind == "file" and loaded.label == path.name
        out = prepare(loaded, "i3d_r18").state_dict()
        assert out.keys() == reference.keys() and all(torch.equal(out[k], reference[k]) for k in out), path


def test_containers_are_reported(tmp_path, seeded):
    path = tmp_path / "c.pth"
    torch.save({"model_state": {f"module.{k}": v for k, v in seeded(18).tensors.items()}, "epoch": 1}, path)
    ckpt = load_checkpoint(path)
    assert ckpt.container == "model_state" and ckpt.prefix == "module." and ckpt.dropped == ["epoch"]
    assert "unwrapped from 'model_state'" in resolve_source(str(path), depth=18).description


def test_depth_is_read_from_the_keys_and_must_fit(r18_file):
    src = resolve_source(str(r18_file), depth=50)
    assert src.depth == 18
    with pytest.raises(Inflate3dError, match="is a ResNet-18 but slowfast_r50_4x16 needs a ResNet-50"):
        prepare(src, "slowfast_r50_4x16")


def test_torchvision_names_match_torchvision_itself():
    import torchvision.models as tvm

    for (depth, weights), filename in TORCHVISION_FILES.items():
        enum = getattr(tvm, f"ResNet{depth}_Weights")[weights]
        assert enum.url.endswith("/" + filename)


def test_torchvision_source_from_the_hub_cache(seeded):
    path = hub_checkpoint_dir() / TORCHVISION_FILES[(50, "IMAGENET1K_V2")]
    path.parent.mkdir(parents=True)
    torch.save(seeded(50).tensors, path)
    src = resolve_source("torchvision:resnet50:IMAGENET1K_V2", depth=50)
    assert src.kind == "torchvision-imagenet" and src.label == "torchvision:resnet50:IMAGENET1K_V2"
    # the embedded default prefers cached ImageNet V1 weights, else a loudly labelled seeded init
    default = resolve_source(None, depth=50)
    assert default.kind == "seeded-init" and "NOT ImageNet" in default.description
    path.rename(path.with_name(TORCHVISION_FILES[(50, "IMAGENET1K_V1")]))
    assert resolve_source(None, depth=50).kind == "torchvision-imagenet"


def test_missing_torchvision_weights_say_which_file_goes_where():
    with pytest.raises(Inflate3dError) as e:
        resolve_source("torchvision:resnet101", depth=101)
    msg = str(e.value)
    assert "resnet101-63fe2227.pth" in msg and str(hub_checkpoint_dir()) in msg and "\n" not in msg
    with pytest.raises(Inflate3dError, match="unknown torchvision source"):
        resolve_source("torchvision:resnet51", depth=50)


def test_seeded_sources_are_reproducible():
    a = resolve_source("seeded:resnet18:3", depth=18)
    b = resolve_source("seeded:resnet18:3", depth=18)
    assert a.sha256 == b.sha256 and a.label == "seeded:resnet18:3"
    assert a.sha256 != resolve_source("seeded:resnet18:4", depth=18).sha256


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_bytes(b"hello world, not weights"), "not a safetensors, torch zip or pickle"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: None, "no such file"),
    (lambda p: torch.save({"weights": [1, 2, 3]}, p), "no tensors found"),
    (lambda p: torch.save({"a": torch.zeros(1), "b": "text"}, p), "not tensors where weights are expected"),
    (lambda p: torch.save({"x": _Exploit()}, p), "refused: unpickling would call posix.system. Nothing was run"),
])
def test_bad_files_give_one_line_errors(tmp_path, make, match):
    path = tmp_path / "bad.pth"
    make(path)
    with pytest.raises(Inflate3dError, match=match) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_files(tmp_path, seeded):
    st = tmp_path / "t.safetensors"
    save_file(seeded(18).tensors, str(st))
    st.write_bytes(st.read_bytes()[:5000])
    with pytest.raises(Inflate3dError, match="truncated"):
        load_checkpoint(st)
    zp = tmp_path / "t.pth"
    torch.save(seeded(18).tensors, zp)
    zp.write_bytes(zp.read_bytes()[:100_000])
    with pytest.raises(Inflate3dError, match="corrupt torch zip|unreadable torch"):
        load_checkpoint(zp)


def test_not_a_resnet(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(1, 1, 1, 1)},
              str(path))
    with pytest.raises(Inflate3dError, match="match no ResNet depth"):
        resolve_source(str(path), depth=50)
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(Inflate3dError, match="not a torchvision-style 2D ResNet"):
        resolve_source(str(path), depth=50)


def test_nan_weights_warn(tmp_path):
    path = tmp_path / "nan.safetensors"
    save_file({"w": torch.tensor([1.0, float("nan")])}, str(path))
    with pytest.warns(UserWarning, match="NaN or Inf"):
        load_checkpoint(path)


def test_trusted_pickle_is_loaded_only_when_asked(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"

    class Touch:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Touch()}, path)
    with pytest.raises(Inflate3dError, match="pass --trust-pickle"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_safetensors_header_length_starting_with_0x80_is_not_a_pickle(tmp_path):
    from inflate3d.io.load import sniff_format

    for pad in range(0, 300):
        path = tmp_path / "x.safetensors"
        save_file({"w" * (pad + 1): torch.zeros(1)}, str(path))
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.skip("no 0x80 header length found")
    assert sniff_format(path) == "safetensors"
    assert list(load_checkpoint(path).tensors) == ["w" * (pad + 1)]


def test_pyslowfast_pytorchvideo_wrapper_prefix_is_stripped(tmp_path):
    path = tmp_path / "ptv.pyth"
    torch.save({"model_state": {"model.blocks.0.conv.weight": torch.zeros(1)}, "epoch": 2}, path)
    ckpt = load_checkpoint(path)
    assert list(ckpt.tensors) == ["blocks.0.conv.weight"] and ckpt.prefix == "model."
