"""The Python API as a user meets it: `import inflate3d`, help(), one-call inflation, errors a
Python user can catch by their builtin type, settings routed or refused clearly."""
from __future__ import annotations

import importlib
import os
import pydoc
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import inflate3d
from inflate3d.errors import Inflate3dError
from inflate3d.inflate import resolve_source
from inflate3d.settings import format_settings, parse_settings

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_cheap_and_help_shows_real_documentation():
    code = ("import sys, inflate3d, pydoc\n"
            "text = pydoc.render_doc(inflate3d.inflate, renderer=pydoc.plaintext)\n"
            "assert 'Inflate a 2D torchvision ResNet into' in text, text\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    for name in ("build_model", "load_model", "inflate", "inflate_into", "convert", "diff", "verify", "inspect"):
        doc = pydoc.render_doc(getattr(inflate3d, name), renderer=pydoc.plaintext)
        assert len(getattr(inflate3d, name).__doc__) > 200, name
        first = getattr(inflate3d, name).__doc__.splitlines()[0]
        assert f"function {name} in module inflate3d" in doc and first in doc, name
    assert set(inflate3d.__all__) == {"Inflate3dError", "__version__", "build_model", "convert", "diff",
                                      "inflate", "inflate_into", "inspect", "load_model", "verify"}
    for sub in ("inflate3d.diff.checkpoints", "inflate3d.inflate.sources", "inflate3d.verify.api"):
        importlib.import_module(sub)  # subpackages of the same names stay importable...

    assert callable(inflate3d.inflate) and callable(inflate3d.diff) and callable(inflate3d.verify)  # ...and hidden


def test_inflate_in_one_call_loads_strictly_into_build_model(tmp_path, seeded):
    src = seeded(18)
    path = tmp_path / "resnet18.pth"
    torch.save(src.tensors, path)
    result = inflate3d.inflate(path, "i3d_r18", method="centre")
    inflate3d.build_model("i3d_r18").load_state_dict(result.state_dict)  # strict, default head 400
    assert result.report["tensors"]["inflated"]["tensors"] == 11 and result.metadata["method"] == "center"
    w2d, w3d = src.tensors["layer1.0.conv1.weight"], result.state_dict["backbone.layer1.0.conv1.conv.weight"]
    assert torch.equal(w3d[:, :, 1], w2d) and not w3d[:, :, 0].any()
    # every kind of source gives the same tensors
    net = torchvision.models.resnet18()
    net.load_state_dict(src.tensors)
    for source in (str(path), src.tensors, net):
        other = inflate3d.inflate(source, "i3d_r18", method="center", head=None)
        assert all(torch.equal(other.state_dict[k], v) for k, v in result.state_dict.items() if k in other.state_dict)
        assert not any(k.startswith("cls_head") for k in other.state_dict)
    assert resolve_source(str(path)).depth == 18  # depth read, not required
    verified = inflate3d.inflate(net, "i3d_r18", head="imagenet", verify=True).verification
    assert verified.passed and [c.name for c in verified.checks][-1] == "logits"


def test_convert_diff_verify_inspect_return_plain_objects(tmp_path, seeded):
    result = inflate3d.inflate(seeded(18).tensors, "i3d_r18", head=None)
    path = tmp_path / "i3d.pth"
    torch.save(result.state_dict, path)
    tv = inflate3d.convert(path, to="torchvision3d")
    assert tv.arch_name == "i3d_r18" and "layer1.0.conv1.weight" in tv.tensors
    assert inflate3d.diff(path, path).equal
    src = tmp_path / "r18.pth"
    torch.save(seeded(18).tensors, src)
    assert inflate3d.diff(src, path, inflated=True).exact  # either order
    assert inflate3d.verify(result.state_dict, seeded(18).tensors).passed
    described = inflate3d.inspect(path)
    assert described["architecture"]["matches"]["name"] == "i3d_r18" and described["tensors"] == 120


def test_errors_are_the_builtins_a_python_user_catches(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth: no such file"):
        inflate3d.inflate(tmp_path / "nope.pth", "i3d_r18")
    with pytest.raises(KeyError, match="did you mean i3d_r18") as e:
        inflate3d.build_model("i3d_r81")
    assert isinstance(e.value, Inflate3dError) and str(e.value).startswith("unknown architecture 'i3d_r81'")
    with pytest.raises(ValueError, match="i3d_r50 with depth=18: these settings do not form a network"):
        inflate3d.build_model("i3d_r50", depth=18, device="meta")
    with pytest.raises(ValueError, match="inflation method 'sideways'"):
        inflate3d.inflate("seeded:resnet18:0", "i3d_r18", method="sideways")
    with pytest.raises(ValueError, match="tolerances must be >= 0"):
        inflate3d.diff(tmp_path, tmp_path, atol=-1)
    for message in (str(e.value),):
        assert "--" not in message  # library messages name no CLI flags


def test_settings_are_routed_or_refused_with_where_they_belong():
    model = inflate3d.build_model("slowfast_r50_8x8", lateral_norm=True, device="meta")
    assert model.backbone.slow_path.lateral_norm and not model.backbone.fast_path.lateral_norm
    assert "backbone.slow_path.conv1_lateral.bn.weight" in model.state_dict()
    with pytest.raises(KeyError, match=r"say which one: slow_pathway=\{'conv1_kernel': \(3, 7, 7\)\}"):
        inflate3d.build_model("slowfast_r50_8x8", conv1_kernel=(3, 7, 7), device="meta")
    with pytest.raises(KeyError, match="unknown setting 'lateral_norm'; resnet3d backbones take"):
        inflate3d.build_model("i3d_r50", lateral_norm=True, device="meta")
    with pytest.raises(KeyError, match="slow_pathway has no setting colour"):
        inflate3d.build_model("slowfast_r50_8x8", slow_pathway={"colour": 1}, device="meta")
    assert inflate3d.build_model("slowfast_r50_4x16", speed_ratio=4, device="meta").backbone.speed_ratio == 4


def test_settings_parser_reads_back_what_it_writes():
    parsed = parse_settings(["slow_pathway.lateral_norm=true", "speed_ratio=4", "slow_pathway.conv1_kernel=1,7,7",
                             "inflate_style=3x3x3", "fast_pathway.lateral=False"])
    assert parsed == {"slow_pathway": {"lateral_norm": True, "conv1_kernel": (1, 7, 7)}, "speed_ratio": 4,
                      "inflate_style": "3x3x3", "fast_pathway": {"lateral": False}}
    assert parse_settings(format_settings(parsed).split(", ")) == parsed
    nested = {"inflate": ((1, 1, 1), (1, 0, 1, 0)), "inflate_style": ("3x1x1", "3x3x3")}
    assert format_settings(nested) == "inflate=((1,1,1),(1,0,1,0)), inflate_style=('3x1x1','3x3x3')"
    assert parse_settings(format_settings(nested).split(", ")) == nested
    for bad, message in (("speed_ratio", "expected KEY=VALUE"), ("a..b=1", "expected KEY=VALUE"),
                         ("=4", "expected KEY=VALUE")):
        with pytest.raises(ValueError, match=message):
            parse_settings([bad])
    with pytest.raises(ValueError, match="given twice"):
        parse_settings(["x=1", "x=2"])


def test_arch_names_known_without_torch_are_the_registered_ones():
    """Every family's archs (ResNet zoo, X3D, Swin, ViT), in the order `inflate3d archs` lists them."""
    from inflate3d.names import ARCH_NAMES
    from inflate3d.slowfast.archs import all_archs

    assert list(ARCH_NAMES) == list(all_archs())


def test_scheme_names_known_without_torch_cover_every_family():
    from inflate3d import families
    from inflate3d.inflate.schemes import SCHEMES
    from inflate3d.names import SCHEME_NAMES, TARGET_NAMES

    assert set(families.schemes()) | set(SCHEMES) <= set(SCHEME_NAMES)
    assert set(TARGET_NAMES) <= set(SCHEME_NAMES)


def test_one_settings_parser_and_both_recorded_forms():
    """--set is parsed by one torch-free parser (re-exported for the inflation code); a file's
    arch_settings are read whether written as KEY=VALUE text or, by older files, as JSON."""
    from inflate3d import settings as top
    from inflate3d.inflate import settings as inner

    assert inner.parse_settings is top.parse_settings
    nested = {"slow_pathway": {"lateral_norm": True, "fusion_kernel": 7}, "speed_ratio": 4}
    assert top.read_recorded_settings(format_settings(nested)) == nested
    assert top.read_recorded_settings('{"slow_pathway": {"lateral_norm": true}}') == {"slow_pathway": {"lateral_norm": True}}
    assert top.read_recorded_settings("") == {} and top.read_recorded_settings("not a setting") == {}


def test_every_command_takes_the_merged_options_without_torch():
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from inflate3d.cli import main\n"
            "r = CliRunner()\n"
            "for cmd in ('inflate', 'convert', 'verify', 'inspect'):\n"
            "    assert '--set KEY=VALUE' in r.invoke(main, [cmd, '--help']).output, cmd\n"
            "text = ' '.join(r.invoke(main, ['inflate', '--help']).output.split())\n"
            "for word in ('pyslowfast', 'caffe2', 'pytorchvideo', 'huggingface', '--into', 'mean|center|arp', '-q,'):\n"
            "    assert word in text, word\n"
            "assert '--frames' in r.invoke(main, ['verify', '--help']).output\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
