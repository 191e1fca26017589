"""``io.mm_config`` reads the ``model`` of an OpenMMLab config text (what mmaction2 checkpoints keep
in ``meta['cfg']``) by parsing, never running it: literals only, anything else left out, and hostile
text gives nothing, quickly."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from inflate3d.io.mm_config import MAX_TEXT, read_model

# mmengine 0.10.7's Config.pretty_text of mmaction2's SlowFast 8x8 model (and a few other entries)
PRETTY = (Path(__file__).parents[1] / "data" / "mmengine_pretty_text_slowfast_8x8.py.txt").read_text()


def test_the_model_of_a_pretty_text():
    model = read_model(PRETTY)
    assert model["type"] == "Recognizer3D" and model["cls_head"]["num_classes"] == 400
    backbone = model["backbone"]
    assert (backbone["resample_rate"], backbone["speed_ratio"], backbone["channel_ratio"]) == (4, 4, 8)
    assert backbone["slow_pathway"]["inflate"] == (0, 0, 1, 1) and backbone["slow_pathway"]["fusion_kernel"] == 7
    assert backbone["fast_pathway"]["pretrained"] is None and model["data_preprocessor"]["mean"] == [123.675, 116.28, 103.53]
    assert read_model(PRETTY.replace("speed_ratio=4", "speed_ratio=four"))["backbone"].get("speed_ratio") is None


def test_what_is_not_a_literal_is_left_out():
    model = read_model("base = dict(depth=50)\nmodel = dict(backbone=dict(depth=base['depth'], width=-64, "
                       "stem=dict(**base), act=nn.ReLU, k=(1, f(2)), d={'a': 1, 2: 3}, s={'b': -0.5}, "
                       "n=None, ok=True))\n")
    assert model == {"backbone": {"width": -64, "s": {"b": -0.5}, "n": None, "ok": True}}
    assert read_model("model = dict(a=1)\nmodel = dict(a=2)\n") == {"a": 2}  # the last assignment
    assert read_model("model = [1, 2]\n") == {} and read_model("def model(): pass\n") == {}
    assert read_model("x = dict(model=1)\n") == {}  # no assignment to model


@pytest.mark.parametrize("text", [
    "model = " + "+0" * (MAX_TEXT // 2 - 8),  # a deep expression, just under the size limit
    "model = " + "a" + ".b" * 200_000,
    "model = " + "(" * 100_000 + ")" * 100_000,
    "model = " + "dict(a=" * 3_000 + "1" + ")" * 3_000,  # nested deeper than a config: cut at MAX_DEPTH
    "model = " + "[" * 150 + "]" * 150,
    "model = " + "not " * 300_000 + "1",
    "model = dict(\n" + "  a=1,\n" * 200_000,  # unclosed
    "model = dict(a=1)" + " " * MAX_TEXT,  # larger than any config
    "model = dict(a='\x00\udcff')\n\x00",
])
def test_hostile_text_gives_nothing_quickly(text):
    start = time.perf_counter()
    model = read_model(text)
    assert time.perf_counter() - start < 3.0
    assert model == {}
