"""X3D's naming schemes: two-way key tables against the native (mmaction2 ``X3D`` + ``X3DHead``) names.

Renames only; the structural differences are the named steps in ``steps.py``: the head's 2048-wide
layer is a Linear natively and a 1x1x1 conv in both peers, and pytorchvideo has no shortcut BN where
a block keeps its width. Note pytorchvideo's stem names are swapped: its ``conv_t`` is the spatial
1x3x3 conv and its ``conv_xy`` the temporal 5x1x1 one.
"""
from __future__ import annotations

from ..inflate.schemes import Scheme
from ..inflate.schemes.mmaction2 import MMACTION2
from ..inflate.schemes.table import KeyTable
from .detect import STEM_KEYS  # noqa: F401 (a key only an X3D checkpoint of each scheme has)

_C = "{c=a|b|c}"
_BLOCK_PYS = "s{L+1}.pathway0_res{b}"
_BLOCK_NATIVE = "backbone.layer{L}.{b}"

PYSLOWFAST_X3D = KeyTable.of("pyslowfast", [
    ("s1.pathway0_stem.conv_xy.{t*}",                 "backbone.conv1_s.conv.{t*}"),
    ("s1.pathway0_stem.conv.{t*}",                    "backbone.conv1_t.conv.{t*}"),
    ("s1.pathway0_stem.bn.{t*}",                      "backbone.conv1_t.bn.{t*}"),
    (f"{_BLOCK_PYS}.branch1.{{t*}}",                  f"{_BLOCK_NATIVE}.downsample.conv.{{t*}}"),
    (f"{_BLOCK_PYS}.branch1_bn.{{t*}}",               f"{_BLOCK_NATIVE}.downsample.bn.{{t*}}"),
    (f"{_BLOCK_PYS}.branch2.{_C}.{{t*}}",             f"{_BLOCK_NATIVE}.conv{{c+1}}.conv.{{t*}}"),
    (f"{_BLOCK_PYS}.branch2.{_C}_bn.{{t*}}",          f"{_BLOCK_NATIVE}.conv{{c+1}}.bn.{{t*}}"),
    (f"{_BLOCK_PYS}.branch2.se.fc{{n}}.{{t*}}",       f"{_BLOCK_NATIVE}.se_module.fc{{n}}.{{t*}}"),
    ("head.conv_5.{t*}",                              "backbone.conv5.conv.{t*}"),
    ("head.conv_5_bn.{t*}",                           "backbone.conv5.bn.{t*}"),
    ("head.lin_5.{t*}",                               "cls_head.fc1.{t*}"),
    ("head.projection.{t*}",                          "cls_head.fc2.{t*}"),
])

_BLOCK_PV = "blocks.{L}.res_blocks.{b}"

PYTORCHVIDEO_X3D = KeyTable.of("pytorchvideo", [
    ("blocks.0.conv.conv_t.{t*}",                     "backbone.conv1_s.conv.{t*}"),
    ("blocks.0.conv.conv_xy.{t*}",                    "backbone.conv1_t.conv.{t*}"),
    ("blocks.0.norm.{t*}",                            "backbone.conv1_t.bn.{t*}"),
    (f"{_BLOCK_PV}.branch1_conv.{{t*}}",              f"{_BLOCK_NATIVE}.downsample.conv.{{t*}}"),
    (f"{_BLOCK_PV}.branch1_norm.{{t*}}",              f"{_BLOCK_NATIVE}.downsample.bn.{{t*}}"),
    (f"{_BLOCK_PV}.branch2.conv_{_C}.{{t*}}",         f"{_BLOCK_NATIVE}.conv{{c+1}}.conv.{{t*}}"),
    (f"{_BLOCK_PV}.branch2.norm_b.0.{{t*}}",          f"{_BLOCK_NATIVE}.conv2.bn.{{t*}}"),
    (f"{_BLOCK_PV}.branch2.norm_{{c=a|c}}.{{t*}}",    f"{_BLOCK_NATIVE}.conv{{c=1|3}}.bn.{{t*}}"),
    (f"{_BLOCK_PV}.branch2.norm_b.1.block.{{n=0|2}}.{{t*}}", f"{_BLOCK_NATIVE}.se_module.fc{{n=1|2}}.{{t*}}"),
    ("blocks.5.pool.pre_conv.{t*}",                   "backbone.conv5.conv.{t*}"),
    ("blocks.5.pool.pre_norm.{t*}",                   "backbone.conv5.bn.{t*}"),
    ("blocks.5.pool.post_conv.{t*}",                  "cls_head.fc1.{t*}"),
    ("blocks.5.proj.{t*}",                            "cls_head.fc2.{t*}"),
])

SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("mmaction2", None, MMACTION2, False, False, "mmaction2 X3D + X3DHead (backbone.*, cls_head.*)"),
    Scheme("pyslowfast", None, PYSLOWFAST_X3D, False, False,
           "PySlowFast x3d (s1.pathway0_stem.conv_xy, s2.pathway0_res0.branch2.se, head.lin_5)"),
    Scheme("pytorchvideo", None, PYTORCHVIDEO_X3D, False, False,
           "pytorchvideo create_x3d (blocks.0.conv.conv_t, blocks.N.res_blocks, blocks.5.pool.post_conv)"),
)}
