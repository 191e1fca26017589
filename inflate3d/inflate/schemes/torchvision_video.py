"""torchvision's own video ResNets (``torchvision.models.video``: r3d_18, mc3_18) against native
names. Their convs sit in ``nn.Sequential`` units (conv, BN, ReLU), so a conv is ``.0`` and its BN
``.1``; the stem is ``stem``, the classifier ``fc``. In r2plus1d_18 a conv is itself a sequence
(spatial conv ``.0``, BN ``.1``, ReLU, temporal conv ``.3``), and so is the stem."""
from .table import KeyTable

TORCHVISION_VIDEO = KeyTable.of("torchvision_video", [
    ("stem.0.weight",                        "backbone.conv1.conv.weight"),
    ("stem.1.{t*}",                          "backbone.conv1.bn.{t*}"),
    ("layer{L}.{b}.conv{c}.0.weight",        "backbone.layer{L}.{b}.conv{c}.conv.weight"),
    ("layer{L}.{b}.conv{c}.1.{t*}",          "backbone.layer{L}.{b}.conv{c}.bn.{t*}"),
    ("layer{L}.{b}.downsample.0.weight",     "backbone.layer{L}.{b}.downsample.conv.weight"),
    ("layer{L}.{b}.downsample.1.{t*}",       "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    ("fc.{t*}",                              "cls_head.fc_cls.{t*}"),
])

TORCHVISION_R2PLUS1D = KeyTable.of("torchvision_video", [
    ("stem.0.weight",                        "backbone.conv1.conv.conv_s.weight"),
    ("stem.1.{t*}",                          "backbone.conv1.conv.bn_s.{t*}"),
    ("stem.3.weight",                        "backbone.conv1.conv.conv_t.weight"),
    ("stem.4.{t*}",                          "backbone.conv1.bn.{t*}"),
    ("layer{L}.{b}.conv{c}.0.0.weight",      "backbone.layer{L}.{b}.conv{c}.conv.conv_s.weight"),
    ("layer{L}.{b}.conv{c}.0.1.{t*}",        "backbone.layer{L}.{b}.conv{c}.conv.bn_s.{t*}"),
    ("layer{L}.{b}.conv{c}.0.3.weight",      "backbone.layer{L}.{b}.conv{c}.conv.conv_t.weight"),
    ("layer{L}.{b}.conv{c}.1.{t*}",          "backbone.layer{L}.{b}.conv{c}.bn.{t*}"),
    ("layer{L}.{b}.downsample.0.weight",     "backbone.layer{L}.{b}.downsample.conv.weight"),
    ("layer{L}.{b}.downsample.1.{t*}",       "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    ("fc.{t*}",                              "cls_head.fc_cls.{t*}"),
])
