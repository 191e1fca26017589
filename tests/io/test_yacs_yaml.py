"""``io.yacs_yaml`` reads a checkpoint's ``cfg`` as PyYAML would, without PyYAML: every scalar it
returns is the value (and type) ``yaml.safe_load`` gives, for configs that yacs and PyYAML write;
the facts a config holds (counts, names) are always returned; hostile text costs linear time and
raises nothing."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings, strategies as st

from inflate3d.io.yacs_yaml import read_scalars

yaml = pytest.importorskip("yaml")


def _scalars(tree, prefix=""):
    """Every scalar leaf of ``tree`` under its dotted path (lists are not scalars)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            out[f"{prefix}{key}"] = value
    return out


def _same(got: dict, want: dict) -> None:
    wrong = {k: (v, want.get(k, "(absent)")) for k, v in got.items()
             if k not in want or type(v) is not type(want[k]) or v != want[k]}
    assert not wrong


PYSLOWFAST = {  # the shape of PySlowFast's defaults: sections, lists, nested lists, odd strings
    "MODEL": {"ARCH": "slowfast", "MODEL_NAME": "SlowFast", "NUM_CLASSES": 400, "DROPOUT_RATE": 0.5,
              "FC_INIT_STD": 0.01, "HEAD_ACT": "softmax", "LOSS_FUNC": "cross_entropy"},
    "SLOWFAST": {"ALPHA": 8, "BETA_INV": 8, "FUSION_CONV_CHANNEL_RATIO": 2, "FUSION_KERNEL_SZ": 7},
    "RESNET": {"DEPTH": 50, "NUM_GROUPS": 1, "TRANS_FUNC": "bottleneck_transform", "ZERO_INIT_FINAL_BN": True,
               "SPATIAL_STRIDES": [[1, 1], [2, 2], [2, 2], [2, 2]], "NUM_BLOCK_TEMP_KERNEL": [[3, 3], [4, 4]]},
    "NONLOCAL": {"LOCATION": [[[], []], [[], []]], "INSTANTIATION": "dot_product", "POOL": [[[1, 2, 2], [1, 2, 2]]]},
    "DATA": {"NUM_FRAMES": 32, "SAMPLING_RATE": 2, "MEAN": [0.45, 0.45, 0.45], "PATH_TO_DATA_DIR": "",
             "PATH_PREFIX": "/data/k400: videos", "DECODING_BACKEND": "pyav", "ENSEMBLE_METHOD": "sum",
             "TRAIN_JITTER_SCALES": [256, 320], "INV_UNIFORM_SAMPLE": False, "REVERSE_INPUT_CHANNEL": None},
    "TIMESFORMER": {"ATTENTION_TYPE": "space_only", "PRETRAINED_MODEL": ""},
    "SOLVER": {"BASE_LR": 0.1, "WEIGHT_DECAY": 1e-4, "LRS": [1, 0.1, 0.01], "MOMENTUM": 0.9, "NESTEROV": True},
    "TENSORBOARD": {"MODEL_VIS": {"ENABLE": False, "LAYER_LIST": [], "TOPK_PREDS": 1}},
    "NUM_GPUS": 8, "RNG_SEED": 0, "OUTPUT_DIR": ".", "LOG_PERIOD": 10, "TRAIN": {"ENABLE": True, "DATASET": "kinetics"},
}


def test_a_yacs_dump_reads_as_pyyaml_reads_it():
    yacs = pytest.importorskip("yacs.config")
    text = yacs.CfgNode(PYSLOWFAST).dump()  # what PySlowFast's save_checkpoint stores as 'cfg'
    got, want = read_scalars(text), _scalars(yaml.safe_load(text))
    assert got == want and all(type(got[k]) is type(want[k]) for k in got)
    assert got["SLOWFAST.ALPHA"] == 8 and got["TIMESFORMER.ATTENTION_TYPE"] == "space_only"
    assert "RESNET.SPATIAL_STRIDES" not in got  # lists are not scalars


@pytest.mark.parametrize("style", [False, None])  # block style; an older PyYAML's small flow sections
def test_every_dump_style_a_config_comes_in(style):
    text = yaml.safe_dump(PYSLOWFAST, default_flow_style=style)
    got, want = read_scalars(text), _scalars(yaml.safe_load(text))
    assert got == want


_NAME = st.from_regex(r"[A-Z][A-Z0-9_]{0,11}", fullmatch=True)
_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(
    ["8", "1e5", "1.0e-05", "yes", "No", "null", "~", "a: b", "x #y", "it's", '"q"', "- item", "[1]", "{a}",
     "0o17", "0x1F", "1_000", "2020-01-01", ".inf", "<<", "=", "", " lead", "trail ", "word " * 30]))
_SCALAR = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.booleans(), st.none(), _TEXT)
_TREE = st.recursive(st.dictionaries(_NAME, _SCALAR, max_size=6),
                     lambda inner: st.dictionaries(_NAME, st.one_of(_SCALAR, inner, st.lists(_SCALAR, max_size=3)),
                                                   max_size=6), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(tree=_TREE, style=st.sampled_from([False, None]), width=st.sampled_from([20, 80]))
def test_what_is_read_is_what_pyyaml_reads(tree, style, width):
    """Never a wrong value; and every count, flag and name (what a config's facts are) is read."""
    text = yaml.safe_dump(tree, default_flow_style=style, width=width)
    got, want = read_scalars(text), _scalars(yaml.safe_load(text))
    _same(got, want)
    if style is False:
        facts = {k for k, v in want.items() if type(v) in (int, bool) or v is None
                 or isinstance(v, str) and v.isascii() and v.isidentifier()}
        assert facts <= set(got)


@pytest.mark.parametrize("text", [
    "MODEL:\n  ARCH: " + "[" * 200_000,  # PyYAML's parser recursed on this
    "".join(" " * i + f"K{i}:\n" for i in range(1_000)),  # 1,000 levels deep
    "A: 1\n" + "\n" * 200_000 + "B: 2\n",
    ("- x\n" + "  y: 1\n" * 10) * 20_000,
    "A: " + "1:" * 200_000 + "1",
    "\t\x00\ufeff: ::\n  - ? ! & *\n'unterminated: \"\n",
])
def test_hostile_text_is_read_in_linear_time_without_error(text):
    start = time.perf_counter()
    read_scalars(text)
    assert time.perf_counter() - start < 2.0


def test_facts_of_the_wrong_type_are_not_taken():
    """A cfg's counts must be positive ints and its names strings: anything else is no fact."""
    from inflate3d.inflate.facts import pyslowfast_record

    record = pyslowfast_record("MODEL:\n  ARCH: [i3d]\n  NUM_CLASSES: '400'\nSLOWFAST:\n  ALPHA: 0\n"
                               "  BETA_INV: true\n  FUSION_KERNEL_SZ: 5.0\nRESNET:\n  DEPTH: 101\n"
                               "NONLOCAL:\n  INSTANTIATION: softmax\n")
    assert record == {"RESNET.DEPTH": 101, "NONLOCAL.INSTANTIATION": "softmax"}
