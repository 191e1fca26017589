"""The original TSM code's names (``base_model.*``, classifier ``new_fc``; usually under a
``module.`` prefix, which the loader strips) against native (mmaction2 ResNetTSM) names.

Shifted convs are wrapped as ``net`` in both codebases, so ``conv1.net.weight`` maps to
``conv1.conv.net.weight``; with ``shift_place='block'`` the whole block is the ``net``.
"""
from .table import KeyTable

TSM_ORIGINAL = KeyTable.of("tsm", [
    ("base_model.conv1.weight",                              "backbone.conv1.conv.weight"),
    ("base_model.bn1.{t*}",                                  "backbone.conv1.bn.{t*}"),
    ("base_model.layer{L}.{b}.conv{c}.net.weight",           "backbone.layer{L}.{b}.conv{c}.conv.net.weight"),
    ("base_model.layer{L}.{b}.conv{c}.weight",               "backbone.layer{L}.{b}.conv{c}.conv.weight"),
    ("base_model.layer{L}.{b}.bn{c}.{t*}",                   "backbone.layer{L}.{b}.conv{c}.bn.{t*}"),
    ("base_model.layer{L}.{b}.downsample.0.weight",          "backbone.layer{L}.{b}.downsample.conv.weight"),
    ("base_model.layer{L}.{b}.downsample.1.{t*}",            "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    ("base_model.layer{L}.{b}.net.conv{c}.weight",           "backbone.layer{L}.{b}.net.conv{c}.conv.weight"),
    ("base_model.layer{L}.{b}.net.bn{c}.{t*}",               "backbone.layer{L}.{b}.net.conv{c}.bn.{t*}"),
    ("base_model.layer{L}.{b}.net.downsample.0.weight",      "backbone.layer{L}.{b}.net.downsample.conv.weight"),
    ("base_model.layer{L}.{b}.net.downsample.1.{t*}",        "backbone.layer{L}.{b}.net.downsample.bn.{t*}"),
    ("new_fc.{t*}",                                          "cls_head.fc_cls.{t*}"),
    ("base_model.fc.{t*}",                                   "cls_head.fc_cls.{t*}"),
])
