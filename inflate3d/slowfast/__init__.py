"""The 3D networks: ResNet3d, SlowFast pathways with laterals, heads, recognizer, named archs.

State-dict names and shapes match mmaction2's. Networks know nothing of checkpoints. The named
architectures (``archs``) and depths (``depths``) are torch-free; the network classes below are
imported on first use, so reading the registry (``inspect``) does not import torch.
"""
from importlib import import_module

_EXPORTS = {
    "ARCHS": "archs", "Arch": "archs", "build_model": "archs", "count_parameters": "archs", "get_arch": "archs",
    "BasicBlock3d": "blocks", "Bottleneck3d": "blocks", "ConvBN3d": "conv", "DeConvBN3d": "conv",
    "BaseHead": "heads", "I3DHead": "heads", "SlowFastHead": "heads", "top_k_accuracy": "heads",
    "ResNet3dPathway": "pathway", "Recognizer3D": "recognizer", "DEPTHS": "depths", "ResNet3d": "resnet3d",
    "ResNet3dSlowFast": "slowfast", "ConvBN2d": "tsm", "ResNetTSM": "tsm", "TSMHead": "tsm",
    "TemporalShift": "tsm", "temporal_shift": "tsm",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
