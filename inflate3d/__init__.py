"""inflate3d: 2D image ResNets into 3D video networks, and video checkpoints between codebases.

Importing the package is cheap; torch is imported only when a network is built.
"""
__version__ = "0.1.0"


def build_model(name, **kwargs):
    """Build a named architecture; see :func:`inflate3d.slowfast.archs.build_model`."""
    from .slowfast.archs import build_model as _build

    return _build(name, **kwargs)


def load_model(path, **kwargs):
    """Any checkpoint -> its network, loaded strictly, eval mode; see
    :func:`inflate3d.inflate.load_model.load_model`."""
    from .inflate.load_model import load_model as _load

    return _load(path, **kwargs)


__all__ = ["__version__", "build_model", "load_model"]
