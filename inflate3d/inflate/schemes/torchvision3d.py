"""torchvision names: with 5-D kernels (I3ResNet-style inflaters, any depth), or 2D (TSN) names
of a TSM network, whose shift wrappers (``.net``) 2D names do not have."""
from .table import KeyTable

TORCHVISION3D = KeyTable.of("torchvision3d", [
    ("conv1.weight",                        "backbone.conv1.conv.weight"),
    ("bn1.{t*}",                            "backbone.conv1.bn.{t*}"),
    ("layer{L}.{b}.conv{c}.weight",         "backbone.layer{L}.{b}.conv{c}.conv.weight"),
    ("layer{L}.{b}.conv{c}.weight",         "backbone.layer{L}.{b}.conv{c}.conv.net.weight"),  # TSM, shifted
    ("layer{L}.{b}.bn{c}.{t*}",             "backbone.layer{L}.{b}.conv{c}.bn.{t*}"),
    ("layer{L}.{b}.downsample.0.weight",    "backbone.layer{L}.{b}.downsample.conv.weight"),
    ("layer{L}.{b}.downsample.1.{t*}",      "backbone.layer{L}.{b}.downsample.bn.{t*}"),
    ("fc.{t*}",                             "cls_head.fc_cls.{t*}"),
])
