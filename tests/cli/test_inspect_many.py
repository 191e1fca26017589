"""inspect at header speed: no torch, whole folders, one row per checkpoint, --values for the
values. Every case runs the real command in a subprocess (what a user runs), except where the
click runner is enough."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from inflate3d import build_model
from inflate3d.slowfast.archs import get_arch
from inflate3d.slowfast.archs import count_parameters

PY = sys.executable
NO_TORCH = """
import sys
from inflate3d.cli import main
sys.argv = ['inflate3d', *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    print('EXIT', e.code, file=sys.stderr)
print('TORCH', 'torch' in sys.modules, file=sys.stderr)
"""


def cli(*args, cwd=None):
    """(exit code, stdout, imported torch?) of the real command."""
    out = subprocess.run([PY, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True, cwd=cwd)
    lines = out.stderr.strip().splitlines()
    code = int(lines[-2].split()[1])
    return code, out.stdout, lines[-1] == "TORCH True", "\n".join(lines[:-2])


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A folder of checkpoints as people keep them: several codebases, formats and depths."""
    root = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    i3d = build_model("i3d_r18", num_classes=7)
    save_file({k: v.contiguous() for k, v in i3d.state_dict().items()}, str(root / "i3d_r18.safetensors"))
    torch.save({"state_dict": i3d.state_dict(), "meta": {"epoch": 1}}, root / "i3d_r18_mm.pth")
    (root / "sub").mkdir()
    tsm = build_model("tsm_r50", num_classes=None)
    torch.save({"state_dict": tsm.state_dict()}, root / "sub" / "tsm.pth")
    (root / "sub" / ".hidden.pth").write_bytes(b"not read")
    (root / "notes.txt").write_text("not a checkpoint")
    return root, {"i3d_r18": count_parameters(i3d), "tsm_r50": count_parameters(tsm)}


def test_one_checkpoint_is_described_without_torch(zoo):
    root, params = zoo
    for name in ("i3d_r18.safetensors", "i3d_r18_mm.pth"):
        code, out, imported, _ = cli("inspect", root / name, "--json")
        doc = json.loads(out)
        assert code == 0 and not imported, name
        assert doc["read"] == "structure" and doc["architecture"]["matches"]["name"] == "i3d_r18"
        assert doc["architecture"]["head_classes"] == 7
        assert doc["parameters"] == params["i3d_r18"]  # BN statistics are not parameters
        assert doc["bytes"] == (root / name).stat().st_size


def test_inspect_imports_none_of_the_slow_modules(zoo):
    """Each costs inspect's start a share of a budget of ~12 ms: zipfile ~6 ms (the zip's directory
    is read by ``io.zip_directory``), dataclasses ~6 ms (their methods are compiled as each class is
    made: ``records``), pickle ~3 ms (``torch_zip``'s own loop)."""
    root, _ = zoo
    code = NO_TORCH.replace("print('TORCH'", "print('SLOW', sorted({'zipfile', 'dataclasses', 'pickle', 'torch'} "
                            "& set(sys.modules)), file=sys.stderr)\nprint('TORCH'")
    for name in ("i3d_r18.safetensors", "i3d_r18_mm.pth", "sub/tsm.pth"):
        out = subprocess.run([PY, "-c", code, "inspect", str(root / name)], capture_output=True, text=True)
        assert "EXIT 0" in out.stderr and "SLOW []" in out.stderr, (name, out.stderr[-2000:])


def _collections_inside_describe(run) -> tuple[int, bool]:
    """(collections that started inside ``describe_checkpoint`` while ``run()`` ran, whether the
    collector was on afterwards)."""
    import gc

    inside = []

    def seen(phase, _info):
        if phase == "start":
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_name != "describe_checkpoint":
                frame = frame.f_back
            inside.append(frame is not None)

    gc.collect()
    gc.callbacks.append(seen)
    try:
        run()
    finally:
        gc.callbacks.remove(seen)
    return sum(inside), gc.isenabled()


def test_the_collector_is_paused_while_a_checkpoint_is_described(zoo):
    """inspect builds a record per tensor, and collections walked them (0.4-1.4 ms of its 13-28)."""
    from click.testing import CliRunner

    from inflate3d.cli import main
    from inflate3d.inflate.describe import describe_checkpoint

    root, _ = zoo
    path = root / "i3d_r18_mm.pth"
    # the control: described with the collector on, collections start inside
    assert _collections_inside_describe(lambda: [describe_checkpoint(path) for _ in range(3)])[0] > 0
    runs = lambda: [CliRunner().invoke(main, ["inspect", str(path)]) for _ in range(3)]  # noqa: E731
    assert _collections_inside_describe(runs) == (0, True)


def test_a_folder_is_walked_one_row_each(zoo):
    root, params = zoo
    code, out, imported, err = cli("inspect", root, "--jobs", "1")
    assert code == 0 and not imported, err
    lines = out.splitlines()
    assert lines[0].split() == ["checkpoint", "scheme", "architecture", "tensors", "parameters", "dtype", "size"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == sorted(str(root / n) for n in ("i3d_r18.safetensors", "i3d_r18_mm.pth", "sub/tsm.pth"))
    assert rows[str(root / "i3d_r18_mm.pth")][1:5] == ["mmaction2", "i3d_r18", "122", f"{params['i3d_r18']:,}"]
    assert rows[str(root / "sub/tsm.pth")][2] == "tsm_r50"


def test_workers_give_the_same_document(zoo, tmp_path):
    root, _ = zoo
    many = tmp_path / "many"
    many.mkdir()
    for i in range(6):  # enough files for the worker pool
        os.link(root / "i3d_r18_mm.pth", many / f"c{i}.pth")
    docs = []
    for jobs in ("1", "2"):
        code, out, imported, _ = cli("inspect", many, "--json", "--jobs", jobs)
        assert code == 0 and not imported
        docs.append(json.loads(out))
    assert docs[0] == docs[1]
    assert [c["input"] for c in docs[1]["checkpoints"]] == [str(many / f"c{i}.pth") for i in range(6)]


def test_a_bad_file_is_reported_and_the_others_listed(zoo, tmp_path):
    root, _ = zoo
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    code, out, _, err = cli("inspect", root / "i3d_r18.safetensors", bad, "--json")
    doc = json.loads(out)
    assert code == 2 and doc["ok"] is False and doc["failed"] == 1
    assert doc["checkpoints"][0]["architecture"]["matches"]["name"] == "i3d_r18"
    assert doc["checkpoints"][1] == {"input": str(bad), "exit_code": 2,
                                     "error": f"{bad}: not a safetensors, torch zip or pickle checkpoint "
                                              "(first bytes b'junk')"}
    assert f"error: {bad}: not a safetensors" in err


def test_an_empty_folder_is_an_error(tmp_path):
    code, _, _, err = cli("inspect", tmp_path)
    assert code == 2 and f"{tmp_path}: is a directory with no checkpoint files" in err


def test_values_reads_every_tensor_and_finds_nan(tmp_path):
    sd = build_model("i3d_r18", num_classes=None).state_dict()
    sd["backbone.layer1.0.conv1.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    torch.save(sd, tmp_path / "nan.pth")
    code, out, imported, _ = cli("inspect", tmp_path / "nan.pth", "--json")
    assert code == 0 and not imported and "non_finite" not in json.loads(out)  # the structure is fine
    code, out, imported, _ = cli("inspect", tmp_path / "nan.pth", "--values", "--json")
    doc = json.loads(out)
    assert code == 1 and imported and doc["ok"] is False and doc["read"] == "tensors"
    assert doc["non_finite"] == ["backbone.layer1.0.conv1.conv.weight"]


def test_a_legacy_pickle_is_read_by_torch_with_the_same_answer(tmp_path):
    sd = build_model("i3d_r18", num_classes=None).state_dict()
    torch.save(sd, tmp_path / "new.pth")
    torch.save(sd, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    new, old = (json.loads(cli("inspect", tmp_path / f, "--json")[1]) for f in ("new.pth", "old.pth"))
    assert (new.pop("read"), old.pop("read")) == ("structure", "tensors")
    for d in (new, old):
        d.pop("input"), d.pop("bytes"), d.pop("format")
    assert new == old


def test_a_hostile_pickle_is_refused_naming_its_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"w": torch.ones(2), "x": Evil()}, tmp_path / "evil.pth")
    code, _, _, err = cli("inspect", tmp_path / "evil.pth", cwd=tmp_path)
    assert code == 2 and "refused: unpickling would call posix.system" in err
    assert not (tmp_path / "pwned").exists()


FAMILY_MODELS = [  # (arch, small overrides, the schemes its files come in)
    ("x3d_xs", {}, ("mmaction2", "pyslowfast", "pytorchvideo")),
    ("swin3d_t", dict(embed_dims=32, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=(8, 4, 4)),
     ("mmaction2", "torchvision")),
    ("timesformer_b", dict(img_size=32, embed_dims=64, num_heads=2, num_transformer_layers=2,
                           feedforward_channels=128), ("mmaction2", "huggingface", "timesformer")),
    ("vivit_b", dict(num_frames=4, image_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128), ("mmaction2", "huggingface")),
]


@pytest.mark.parametrize("arch, overrides, targets", FAMILY_MODELS, ids=[m[0] for m in FAMILY_MODELS])
def test_other_families_describe_the_same_from_structure_and_from_tensors(tmp_path, arch, overrides, targets):
    """X3D, Swin and ViT describe from shape records; where a scheme's renaming computes on tensors
    (Hugging Face's q, k, v), the tensors are loaded: the description is the same either way."""
    from inflate3d import families
    from inflate3d.inflate.describe import describe_checkpoint

    torch.manual_seed(0)
    native = {k: v.contiguous() for k, v in build_model(arch, num_classes=5, **overrides).state_dict().items()}
    family = families.for_arch(get_arch(arch))
    for target in targets:
        tensors = native if target == "mmaction2" else \
            family.convert(native, source=None, target=target, origin="x", arch=arch).tensors
        path = tmp_path / f"{target}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
        fast = describe_checkpoint(path)
        slow = describe_checkpoint(path, values=True)
        assert fast.pop("read") == "structure" and slow.pop("read") == "tensors"
        assert slow.pop("non_finite") == []
        assert fast == slow, target
        assert fast["scheme"] == target and fast["family"] == family.NAME
