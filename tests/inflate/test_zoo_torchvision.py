"""torchvision's own video ResNets (random weights): to mmaction2 names and back bit for bit, and the
native network computes what torchvision's computes."""
from __future__ import annotations

import pytest
import torch
from peer_models import randomise_bn
from click.testing import CliRunner
from torchvision.models import video

import inflate3d
import inflate3d.errors
from inflate3d.cli import main
from inflate3d.inflate.convert import convert

EXPECTED = {"r3d_18": "r3d_18", "mc3_18": "mc3_18", "r2plus1d_18": "r2plus1d_18"}



@pytest.mark.parametrize("name", list(EXPECTED))
def test_torchvision_video_resnet_round_trip_and_outputs(tmp_path, name):
    torch.manual_seed(0)
    theirs = randomise_bn(getattr(video, name)(weights=None, num_classes=7), 3)
    sd = theirs.state_dict()
    src = tmp_path / f"{name}.pth"
    torch.save(sd, src)
    out = tmp_path / "native.safetensors"
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "torchvision_video -> mmaction2" in result.output and f"architecture {EXPECTED[name]}" in result.output
    ours = inflate3d.load_model(out)
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        expected, got = theirs.double()(x), ours.double()(x)
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-6
    native = convert(sd, source=None, target="mmaction2", origin=name).tensors
    back = convert(native, source=None, target="torchvision_video", origin="native").tensors
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    theirs.float().load_state_dict(back, strict=True)


def test_from_is_honoured_where_the_keys_cannot_tell(tmp_path):
    sd = {"stem.0.weight": torch.zeros(1)}  # detected, so --from must agree
    with pytest.raises(inflate3d.errors.Inflate3dError, match="given as tsm, but its keys are torchvision_video's"):
        convert(sd, source="tsm", target="mmaction2", origin="x")
    odd = {"weird.weight": torch.zeros(1)}
    with pytest.raises(inflate3d.errors.Inflate3dError, match="no torchvision_video -> native mapping: weird.weight"):
        convert(odd, source="torchvision_video", target="mmaction2", origin="x")
