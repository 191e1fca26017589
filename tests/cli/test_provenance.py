"""Nothing silently changed: provenance survives conversion, the recorded head choice decides the
logits check, the extension decides the format, training state is carried or said to be dropped,
and a file damaged between writing and its proof is never given its name."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

from inflate3d.cli import main
from inflate3d.inflate.convert import convert
from inflate3d.slowfast import build_model

# a chain, each from the last (Caffe2, which keeps no BN counters, last); torchvision3d's plain
# state dict (no place for a record) from the inflated file
SCHEME_OUTPUTS = [("mmaction2", "mm.pth"), ("pyslowfast", "psf.pyth"), ("pytorchvideo", "pv.safetensors"),
                  ("caffe2", "c2.pkl"), ("torchvision3d", "tv3d.pt")]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(*args, ok=(0,)):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in ok, (result.exit_code, result.output, result.exception)
    return result


def metadata(path) -> dict:
    from inflate3d.io.load import load_checkpoint

    return load_checkpoint(path).metadata


@pytest.fixture(scope="module")
def inflated(tmp_path_factory, r18_file):
    out = tmp_path_factory.mktemp("infl") / "i3d.safetensors"
    run("inflate", r18_file, "--arch", "i3d_r18", "--head", "imagenet", "--verify-size", "16", "-o", out)
    return out


def test_verify_passes_on_every_conversion_against_the_2d_file_and_its_other_container(
        tmp_path, inflated, r18_file, seeded):
    recorded = metadata(inflated)
    same_weights = tmp_path / "resnet18_other.safetensors"  # the same tensors, another container
    save_file(seeded(18).tensors, str(same_weights))
    previous = inflated
    for i, (scheme, name) in enumerate(SCHEME_OUTPUTS):
        out = tmp_path / name
        run("convert", inflated if scheme == "torchvision3d" else previous, "--to", scheme, "-o", out)
        meta = metadata(out) if scheme not in ("torchvision3d",) else None
        if meta is not None:
            for key in ("source", "source_sha256", "source_tensors_sha256", "arch", "method", "head", "seed"):
                assert meta[key] == recorded[key], (scheme, key)
            assert meta["converted_from"] == previous.name and meta["target_scheme"] == scheme
            assert len(meta["converted_from_sha256"]) == 64
        if scheme == "torchvision3d":  # a plain state dict: no record; --arch says what it is
            result = run("verify", out, "--against", r18_file, "--arch", "i3d_r18", "--verify-size", "16")
            assert "logits are not compared" in result.output
            continue
        data = json.loads(run("verify", out, "--against", r18_file, "--verify-size", "16", "--json").stdout)
        assert data["ok"] and [c["name"] for c in data["verification"]["checks"]][-1] == "logits"
        assert "source sha256 matches" in data["verification"]["notes"][0]
        if i % 2 == 0:
            other = run("verify", out, "--against", same_weights, "--verify-size", "16")
            assert "source tensors match the metadata" in other.output
        assert run("diff", "--inflated", out, r18_file).exit_code == 0
        previous = out
    wrong = tmp_path / "other_resnet18.safetensors"
    save_file({k: v + 1 if v.is_floating_point() else v for k, v in seeded(18).tensors.items()}, str(wrong))
    result = run("verify", tmp_path / "pv.safetensors", "--against", wrong, ok=(1,))
    assert "this is not its source" in result.stderr


def test_a_fresh_head_with_the_2d_class_count_verifies(tmp_path, r18_file):
    out = tmp_path / "fresh1000.safetensors"
    data = json.loads(run("inflate", r18_file, "--arch", "i3d_r18", "--head", "1000", "--verify-size", "16",
                          "-o", out, "--json").stdout)
    assert data["verification"]["passed"] and "logits" not in [c["name"] for c in data["verification"]["checks"]]
    assert run("verify", out, "--against", r18_file, "--verify-size", "16").exit_code == 0
    diff = json.loads(run("diff", "--inflated", out, r18_file, "--json").stdout)
    assert diff["exact"] and "cls_head.fc_cls.weight" in diff["no_2d_source"]


def test_the_extension_decides_the_format(tmp_path, r18_file, inflated):
    for name in ("a.pth", "a.pt"):
        run("inflate", r18_file, "--arch", "tsm_r18", "--no-verify", "-o", tmp_path / name)
        assert set(torch.load(tmp_path / name, weights_only=True)) == {"state_dict", "meta"}
    cases = [(["inflate", r18_file, "-o", tmp_path / "b.pth", "--format", "safetensors"],
              "a .pth file is written as pth, but --format safetensors"),
             (["inflate", r18_file, "-o", tmp_path / "b.pkl"], ".pkl is PySlowFast's Caffe2 blob format"),
             (["inflate", r18_file, "-o", tmp_path / "b.bin"], "unknown extension '.bin'; use .safetensors, "
                                                               ".pth/.pt/.pyth (torch) or .pkl (Caffe2 blobs)"),
             (["convert", inflated, "--to", "caffe2", "-o", tmp_path / "b.pth"], "Caffe2 checkpoints are .pkl"),
             (["convert", inflated, "-o", tmp_path / "b.pkl"], "holds Caffe2 blobs; use it with --to caffe2"),
             (["convert", inflated, "-o", tmp_path / "b.safetensors", "--format", "pth"], "--format pth"),
             (["convert", inflated, "-o", tmp_path / "b.weights"], "unknown extension '.weights'")]
    for args, message in cases:
        result = run(*args, ok=(2,))
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "a.pth"]
    run("convert", inflated, "--to", "caffe2", "-o", tmp_path / "c.pkl")
    assert set(pickle.load(open(tmp_path / "c.pkl", "rb"), encoding="latin1")) == {"blobs", "inflate3d"}
    run("convert", inflated, "--to", "pyslowfast", "-o", tmp_path / "c.pyth")
    assert "model_state" in torch.load(tmp_path / "c.pyth", weights_only=True)
    run("convert", inflated, "-o", tmp_path / "c.weights", "--format", "safetensors")
    with safe_open(str(tmp_path / "c.weights"), "pt") as f:
        assert f.metadata()["scheme"] == "mmaction2"


def test_pyslowfast_epoch_and_cfg_are_carried_and_the_optimizer_is_dropped_with_a_note(tmp_path):
    torch.manual_seed(0)
    native = build_model("slowonly_r18", base_channels=8, num_classes=5).state_dict()
    psf = convert(native, source=None, target="pyslowfast", origin="n").tensors
    cfg = "TRAIN:\n  BATCH_SIZE: 64\nMODEL:\n  ARCH: slow\n"
    src = tmp_path / "psf.pyth"
    torch.save({"epoch": 7, "model_state": psf, "cfg": cfg,
                "optimizer_state": {"state": {0: {"momentum_buffer": torch.ones(3)}}, "param_groups": []}}, src)
    mid = tmp_path / "mid.safetensors"
    result = run("convert", src, "-o", mid)
    assert "dropped the optimizer state (optimizer_state)" in result.output
    meta = metadata(mid)
    assert meta["epoch"] == "7" and meta["cfg"] == cfg
    mm = tmp_path / "mm.pth"
    run("convert", mid, "-o", mm)  # mmaction2/mmengine keep them in 'meta'
    assert torch.load(mm, weights_only=True)["meta"]["epoch"] == 7
    back = tmp_path / "back.pyth"
    run("convert", mm, "--to", "pyslowfast", "-o", back)
    obj = torch.load(back, weights_only=True)
    assert obj["epoch"] == 7 and obj["cfg"] == cfg and "optimizer_state" not in obj
    assert all(torch.equal(obj["model_state"][k], v) for k, v in psf.items())


@pytest.mark.parametrize("name", ["out.safetensors", "out.pth", "out.pkl"])
def test_a_file_damaged_between_write_and_proof_is_exit_1_and_never_named(tmp_path, monkeypatch, name):
    """The proof reads the file on disk: damage it after writing and the command fails, leaving
    neither the output nor its temporary file."""
    import inflate3d.io.proof as proof

    torch.manual_seed(0)
    src = tmp_path / "in.safetensors"
    save_file(build_model("slowonly_r18", base_channels=8, num_classes=5).state_dict(), str(src))
    damaged = []
    _damage_before_proof(monkeypatch, name, damaged)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ["convert", src, "-o", out_dir / name] + (["--to", "caffe2"] if name.endswith(".pkl") else [])
    result = run(*args, ok=(1,))
    assert damaged and "nothing was written" in result.stderr and list(out_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["out.safetensors", "out.pth", "out.pkl"])
def test_a_conversion_that_does_not_convert_back_is_exit_1(tmp_path, monkeypatch, name):
    """The round trip is checked on what is on disk (read back, or proven bit-equal to it): a
    back-conversion that swaps two tensors of one shape (each still the very tensor on disk,
    under the wrong name) fails the command."""
    import inflate3d.commands.convert as convert_command

    torch.manual_seed(0)
    src = tmp_path / "in.safetensors"
    save_file(build_model("slowonly_r18", base_channels=8, num_classes=5).state_dict(), str(src))
    real = convert_command.convert_any
    a, b = "backbone.layer1.0.conv1.bn.weight", "backbone.layer1.0.conv1.bn.bias"

    def swapping(tensors, *, source, target, **kw):
        conv = real(tensors, source=source, target=target, **kw)
        if source is not None and target == "mmaction2" and a in conv.tensors:  # converting back
            conv.tensors[a], conv.tensors[b] = conv.tensors[b], conv.tensors[a]
        return conv

    monkeypatch.setattr(convert_command, "convert_any", swapping)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = "caffe2" if name.endswith(".pkl") else "pyslowfast"
    result = run("convert", src, "--to", target, "-o", out_dir / name, ok=(1,))
    assert "converting back does not reproduce the source (2 tensors differ" in result.stderr
    assert list(out_dir.iterdir()) == []


def test_a_conversion_back_to_names_the_source_lacks_says_which(tmp_path, monkeypatch):
    """It said "(0 tensors differ: )": the names are what differ."""
    import inflate3d.commands.convert as convert_command

    torch.manual_seed(0)
    native = tmp_path / "native.safetensors"
    save_file(build_model("slowonly_r18", base_channels=8, num_classes=5).state_dict(), str(native))
    src = tmp_path / "in.safetensors"
    run("convert", native, "--to", "pyslowfast", "-o", src)
    real = convert_command.convert_any

    def renaming(tensors, *, source, target, **kw):
        conv = real(tensors, source=source, target=target, **kw)
        if target == "pyslowfast":  # only the way back to the source's names
            first = next(iter(conv.tensors))
            conv.tensors[first + "_renamed"] = conv.tensors.pop(first)
        return conv

    monkeypatch.setattr(convert_command, "convert_any", renaming)
    out = tmp_path / "out.safetensors"
    result = run("convert", src, "-o", out, ok=(1,))
    assert "converting back does not reproduce the source (it gives 1 names the source does not have: " \
           "s1.pathway0_stem.conv.weight_renamed)" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("name", ["t.safetensors", "t.pth"])
def test_an_inflation_damaged_between_write_and_proof_is_exit_1(tmp_path, monkeypatch, r18_file, name):
    damaged = []
    _damage_before_proof(monkeypatch, name, damaged)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run("inflate", r18_file, "--arch", "tsm_r18", "--no-verify", "-o", out_dir / name, ok=(1,))
    # a torch zip's CRC-32 catches the flipped byte before any value is compared
    says = "differ from what was written" if name.endswith(".safetensors") else "do not match their CRC-32"
    assert damaged and says in result.stderr and list(out_dir.iterdir()) == []


def _damage_before_proof(monkeypatch, name: str, damaged: list) -> None:
    """Flip a byte of the written file before the proof reads it: a safetensors file is read back
    tensor by tensor as it is written (a tensor's last byte, once it is on disk), anything else
    once whole."""
    import inflate3d.io.proof as proof

    if name.endswith(".safetensors"):
        real_written = proof._ReadBack.written

        def damage_then_read_back(self, key, t, position, nbytes):
            if not damaged and t.numel() > 1:  # one byte of the first such tensor, in place
                with open(self.path, "r+b") as f:
                    f.seek(position + nbytes - 1)
                    byte = f.read(1)[0]
                    f.seek(position + nbytes - 1)
                    f.write(bytes([byte ^ 0x40]))
                damaged.append(key)
            return real_written(self, key, t, position, nbytes)

        monkeypatch.setattr(proof._ReadBack, "written", damage_then_read_back)
        return
    real = proof.prove_file

    def damage_then_prove(path, *args, **kwargs):
        _flip_bytes(path, name)
        damaged.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(proof, "prove_file", damage_then_prove)


def _flip_bytes(path, name: str) -> None:
    """Change one value's bytes: the last byte of a safetensors or pickle file (tensor data), a
    byte in the middle of a torch zip (a tensor record)."""
    data = bytearray(open(path, "rb").read())
    if name.endswith(".pkl"):  # the pickle ends with the metadata: damage the largest blob's bytes
        data[len(data) // 2] ^= 0x40
    elif name.endswith(".pth"):
        data[len(data) // 2] ^= 0x40
    else:
        data[-1] ^= 0x40
    open(path, "wb").write(bytes(data))
