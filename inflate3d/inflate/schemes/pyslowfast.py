"""PySlowFast (facebookresearch/SlowFast) names, and its Caffe2 blob names, against native names.

Two-pathway tables serve SlowFast; single-pathway ones serve Slow-only/I3D (PySlowFast writes the
one pathway as ``pathway0``). PySlowFast's fuse is conv + BN + ReLU: native ``lateral_norm=True``.
Its non-local blocks (``pathway0_nonlocal{b}``) follow block b; their maths differ from mmaction2's
(see ``slowfast/non_local.py``), their names map one to one.
"""
from .table import KeyTable

_P = "{p=slow_path|fast_path}"
_C = "{c=a|b|c}"

PYSLOWFAST = KeyTable.of("pyslowfast", [
    ("s1.pathway{p}_stem.conv.{t*}",                     f"backbone.{_P}.conv1.conv.{{t*}}"),
    ("s1.pathway{p}_stem.bn.{t*}",                       f"backbone.{_P}.conv1.bn.{{t*}}"),
    ("s{f+1}_fuse.conv_f2s.{t*}",                        "backbone.slow_path.{f=conv1_lateral|layer1_lateral|layer2_lateral|layer3_lateral}.conv.{t*}"),
    ("s{f+1}_fuse.bn.{t*}",                              "backbone.slow_path.{f=conv1_lateral|layer1_lateral|layer2_lateral|layer3_lateral}.bn.{t*}"),
    ("s{L+1}.pathway{p}_res{b}.branch1.{t*}",            f"backbone.{_P}.layer{{L}}.{{b}}.downsample.conv.{{t*}}"),
    ("s{L+1}.pathway{p}_res{b}.branch1_bn.{t*}",         f"backbone.{_P}.layer{{L}}.{{b}}.downsample.bn.{{t*}}"),
    (f"s{{L+1}}.pathway{{p}}_res{{b}}.branch2.{_C}.{{t*}}",    f"backbone.{_P}.layer{{L}}.{{b}}.conv{{c+1}}.conv.{{t*}}"),
    (f"s{{L+1}}.pathway{{p}}_res{{b}}.branch2.{_C}_bn.{{t*}}", f"backbone.{_P}.layer{{L}}.{{b}}.conv{{c+1}}.bn.{{t*}}"),
    ("s{L+1}.pathway{p}_nonlocal{b}.conv_theta.{t*}",    f"backbone.{_P}.layer{{L}}.{{b}}.non_local_block.theta.conv.{{t*}}"),
    ("s{L+1}.pathway{p}_nonlocal{b}.conv_phi.{t*}",      f"backbone.{_P}.layer{{L}}.{{b}}.non_local_block.phi.0.conv.{{t*}}"),
    ("s{L+1}.pathway{p}_nonlocal{b}.conv_g.{t*}",        f"backbone.{_P}.layer{{L}}.{{b}}.non_local_block.g.0.conv.{{t*}}"),
    ("s{L+1}.pathway{p}_nonlocal{b}.conv_out.{t*}",      f"backbone.{_P}.layer{{L}}.{{b}}.non_local_block.conv_out.conv.{{t*}}"),
    ("s{L+1}.pathway{p}_nonlocal{b}.bn.{t*}",            f"backbone.{_P}.layer{{L}}.{{b}}.non_local_block.conv_out.bn.{{t*}}"),
    ("head.projection.{t*}",                             "cls_head.fc_cls.{t*}"),
])

PYSLOWFAST_SINGLE = KeyTable.of("pyslowfast", [
    ("s1.pathway0_stem.conv.{t*}",                       "backbone.conv1.conv.{t*}"),
    ("s1.pathway0_stem.bn.{t*}",                         "backbone.conv1.bn.{t*}"),
    ("s{L+1}.pathway0_res{b}.branch1.{t*}",              "backbone.layer{L}.{b}.downsample.conv.{t*}"),
    ("s{L+1}.pathway0_res{b}.branch1_bn.{t*}",           "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    (f"s{{L+1}}.pathway0_res{{b}}.branch2.{_C}.{{t*}}",        "backbone.layer{L}.{b}.conv{c+1}.conv.{t*}"),
    (f"s{{L+1}}.pathway0_res{{b}}.branch2.{_C}_bn.{{t*}}",     "backbone.layer{L}.{b}.conv{c+1}.bn.{t*}"),
    ("s{L+1}.pathway0_nonlocal{b}.conv_theta.{t*}",      "backbone.layer{L}.{b}.non_local_block.theta.conv.{t*}"),
    ("s{L+1}.pathway0_nonlocal{b}.conv_phi.{t*}",        "backbone.layer{L}.{b}.non_local_block.phi.0.conv.{t*}"),
    ("s{L+1}.pathway0_nonlocal{b}.conv_g.{t*}",          "backbone.layer{L}.{b}.non_local_block.g.0.conv.{t*}"),
    ("s{L+1}.pathway0_nonlocal{b}.conv_out.{t*}",        "backbone.layer{L}.{b}.non_local_block.conv_out.conv.{t*}"),
    ("s{L+1}.pathway0_nonlocal{b}.bn.{t*}",              "backbone.layer{L}.{b}.non_local_block.conv_out.bn.{t*}"),
    ("head.projection.{t*}",                             "cls_head.fc_cls.{t*}"),
])

# Caffe2 blobs: ``t_`` marks the fast pathway; BN is scale/bias/running mean/running inverse var
# (``_riv`` holds the running variance: PySlowFast's converter loads it as running_var). Caffe2
# has no num_batches_tracked: native -> Caffe2 drops it, Caffe2 -> native sets it to 0.
_BN = "{n=s|b|rm|riv}"
_BN_NATIVE = "{n=weight|bias|running_mean|running_var}"
_T = "{p=|t_}"

CAFFE2 = KeyTable.of("caffe2", [
    (f"{_T}conv1_w",                                      f"backbone.{_P}.conv1.conv.weight"),
    (f"{_T}res_conv1_bn_{_BN}",                           f"backbone.{_P}.conv1.bn.{_BN_NATIVE}"),
    ("t_pool1_subsample_w",                               "backbone.slow_path.conv1_lateral.conv.weight"),
    (f"t_pool1_subsample_bn_{_BN}",                       f"backbone.slow_path.conv1_lateral.bn.{_BN_NATIVE}"),
    ("t_res{L+1}_{n@L}_branch2c_bn_subsample_w",          "backbone.slow_path.layer{L}_lateral.conv.weight"),
    (f"t_res{{L+1}}_{{k@L}}_branch2c_bn_subsample_bn_{_BN}", f"backbone.slow_path.layer{{L}}_lateral.bn.{_BN_NATIVE}"),
    (f"{_T}res{{L+1}}_{{b}}_branch1_w",                   f"backbone.{_P}.layer{{L}}.{{b}}.downsample.conv.weight"),
    (f"{_T}res{{L+1}}_{{b}}_branch1_bn_{_BN}",            f"backbone.{_P}.layer{{L}}.{{b}}.downsample.bn.{_BN_NATIVE}"),
    (f"{_T}res{{L+1}}_{{b}}_branch2{_C}_w",               f"backbone.{_P}.layer{{L}}.{{b}}.conv{{c+1}}.conv.weight"),
    (f"{_T}res{{L+1}}_{{b}}_branch2{_C}_bn_{_BN}",        f"backbone.{_P}.layer{{L}}.{{b}}.conv{{c+1}}.bn.{_BN_NATIVE}"),
    ("pred_w",                                            "cls_head.fc_cls.weight"),
    ("pred_b",                                            "cls_head.fc_cls.bias"),
    (None,                                                "{x**}.num_batches_tracked"),
    ("{x*}_momentum",                                     None),  # optimizer state
    ("lr",                                                None),
    ("model_iter",                                        None),
])

CAFFE2_SINGLE = KeyTable.of("caffe2", [
    ("conv1_w",                                           "backbone.conv1.conv.weight"),
    (f"res_conv1_bn_{_BN}",                               f"backbone.conv1.bn.{_BN_NATIVE}"),
    ("res{L+1}_{b}_branch1_w",                            "backbone.layer{L}.{b}.downsample.conv.weight"),
    (f"res{{L+1}}_{{b}}_branch1_bn_{_BN}",                f"backbone.layer{{L}}.{{b}}.downsample.bn.{_BN_NATIVE}"),
    (f"res{{L+1}}_{{b}}_branch2{_C}_w",                   "backbone.layer{L}.{b}.conv{c+1}.conv.weight"),
    (f"res{{L+1}}_{{b}}_branch2{_C}_bn_{_BN}",            f"backbone.layer{{L}}.{{b}}.conv{{c+1}}.bn.{_BN_NATIVE}"),
    ("pred_w",                                            "cls_head.fc_cls.weight"),
    ("pred_b",                                            "cls_head.fc_cls.bias"),
    (None,                                                "{x**}.num_batches_tracked"),
    ("{x*}_momentum",                                     None),
    ("lr",                                                None),
    ("model_iter",                                        None),
])
