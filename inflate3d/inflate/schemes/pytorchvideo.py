"""pytorchvideo names (``create_slowfast`` and ``create_resnet``) against native names.

pytorchvideo's fusion is conv + BN + ReLU (native ``lateral_norm=True``); its identity fusion
after the last stage has no weights. ``create_slowfast`` puts the head at ``blocks.6``,
``create_resnet`` at ``blocks.5``; with ``stage1_pool`` (pytorchvideo's I3D and C2D: native
``with_pool2``) that pool is ``blocks.2``, so the stages sit at ``blocks.1,3,4,5`` and the head at
``blocks.6``.
"""
import re
from .table import KeyTable

_P = "{p=slow_path|fast_path}"
_C = "{c=a|b|c}"
_LAT = "{f=conv1_lateral|layer1_lateral|layer2_lateral|layer3_lateral}"

PYTORCHVIDEO = KeyTable.of("pytorchvideo", [
    ("blocks.0.multipathway_blocks.{p}.conv.{t*}",                          f"backbone.{_P}.conv1.conv.{{t*}}"),
    ("blocks.0.multipathway_blocks.{p}.norm.{t*}",                          f"backbone.{_P}.conv1.bn.{{t*}}"),
    ("blocks.{f}.multipathway_fusion.conv_fast_to_slow.{t*}",               f"backbone.slow_path.{_LAT}.conv.{{t*}}"),
    ("blocks.{f}.multipathway_fusion.norm.{t*}",                            f"backbone.slow_path.{_LAT}.bn.{{t*}}"),
    ("blocks.{L}.multipathway_blocks.{p}.res_blocks.{b}.branch1_conv.{t*}", f"backbone.{_P}.layer{{L}}.{{b}}.downsample.conv.{{t*}}"),
    ("blocks.{L}.multipathway_blocks.{p}.res_blocks.{b}.branch1_norm.{t*}", f"backbone.{_P}.layer{{L}}.{{b}}.downsample.bn.{{t*}}"),
    (f"blocks.{{L}}.multipathway_blocks.{{p}}.res_blocks.{{b}}.branch2.conv_{_C}.{{t*}}",
     f"backbone.{_P}.layer{{L}}.{{b}}.conv{{c+1}}.conv.{{t*}}"),
    (f"blocks.{{L}}.multipathway_blocks.{{p}}.res_blocks.{{b}}.branch2.norm_{_C}.{{t*}}",
     f"backbone.{_P}.layer{{L}}.{{b}}.conv{{c+1}}.bn.{{t*}}"),
    ("blocks.6.proj.{t*}",                                                  "cls_head.fc_cls.{t*}"),
])

PYTORCHVIDEO_SINGLE = KeyTable.of("pytorchvideo", [
    ("blocks.0.conv.{t*}",                                   "backbone.conv1.conv.{t*}"),
    ("blocks.0.norm.{t*}",                                   "backbone.conv1.bn.{t*}"),
    ("blocks.{L}.res_blocks.{b}.branch1_conv.{t*}",          "backbone.layer{L}.{b}.downsample.conv.{t*}"),
    ("blocks.{L}.res_blocks.{b}.branch1_norm.{t*}",          "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    (f"blocks.{{L}}.res_blocks.{{b}}.branch2.conv_{_C}.{{t*}}", "backbone.layer{L}.{b}.conv{c+1}.conv.{t*}"),
    (f"blocks.{{L}}.res_blocks.{{b}}.branch2.norm_{_C}.{{t*}}", "backbone.layer{L}.{b}.conv{c+1}.bn.{t*}"),
    # R(2+1)D: conv_b is a factorised pair (temporal first), its middle BN is ``norm``
    ("blocks.{L}.res_blocks.{b}.branch2.conv_b.conv_t.{t*}",  "backbone.layer{L}.{b}.conv2.conv.conv_t.{t*}"),
    ("blocks.{L}.res_blocks.{b}.branch2.conv_b.norm.{t*}",    "backbone.layer{L}.{b}.conv2.conv.bn_s.{t*}"),
    ("blocks.{L}.res_blocks.{b}.branch2.conv_b.conv_xy.{t*}", "backbone.layer{L}.{b}.conv2.conv.conv_s.{t*}"),
    ("blocks.5.proj.{t*}",                                   "cls_head.fc_cls.{t*}"),
])

# ``{L=-|1|3|4|5}``: layer L is block 1, 3, 4, 5 (choice 0 is never written: layers count from 1)
_STAGE = "{L=-|1|3|4|5}"
PYTORCHVIDEO_POOLED = KeyTable.of("pytorchvideo", [
    ("blocks.0.conv.{t*}",                                      "backbone.conv1.conv.{t*}"),
    ("blocks.0.norm.{t*}",                                      "backbone.conv1.bn.{t*}"),
    (f"blocks.{_STAGE}.res_blocks.{{b}}.branch1_conv.{{t*}}",   "backbone.layer{L}.{b}.downsample.conv.{t*}"),
    (f"blocks.{_STAGE}.res_blocks.{{b}}.branch1_norm.{{t*}}",   "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    (f"blocks.{_STAGE}.res_blocks.{{b}}.branch2.conv_{_C}.{{t*}}", "backbone.layer{L}.{b}.conv{c+1}.conv.{t*}"),
    (f"blocks.{_STAGE}.res_blocks.{{b}}.branch2.norm_{_C}.{{t*}}", "backbone.layer{L}.{b}.conv{c+1}.bn.{t*}"),
    ("blocks.6.proj.{t*}",                                      "cls_head.fc_cls.{t*}"),
])


def has_pool_block(keys) -> bool:
    """Single-pathway names with a stage at ``blocks.5`` or a head at ``blocks.6``: a pool sits at
    ``blocks.2`` (it has no weights; the shifted numbering shows it)."""
    return any(re.match(r"blocks\.(5\.res_blocks|6\.proj)\.", k) for k in keys)
