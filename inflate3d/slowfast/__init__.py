"""The 3D networks: ResNet3d, SlowFast pathways with laterals, heads, recognizer, named archs.

State-dict names and shapes match mmaction2's. Networks know nothing of checkpoints.
"""
from .archs import ARCHS, Arch, build_model, count_parameters, get_arch
from .blocks import BasicBlock3d, Bottleneck3d
from .conv import ConvBN3d, DeConvBN3d
from .heads import BaseHead, I3DHead, SlowFastHead, top_k_accuracy
from .pathway import ResNet3dPathway
from .recognizer import Recognizer3D
from .resnet3d import DEPTHS, ResNet3d
from .slowfast import ResNet3dSlowFast
from .tsm import ConvBN2d, ResNetTSM, TSMHead, TemporalShift, temporal_shift

__all__ = ["ARCHS", "Arch", "BaseHead", "BasicBlock3d", "Bottleneck3d", "ConvBN2d", "ConvBN3d", "DEPTHS",
           "ResNetTSM", "TSMHead", "TemporalShift", "temporal_shift",
           "DeConvBN3d", "I3DHead", "Recognizer3D", "ResNet3d", "ResNet3dPathway",
           "ResNet3dSlowFast", "SlowFastHead", "build_model", "count_parameters", "get_arch",
           "top_k_accuracy"]
