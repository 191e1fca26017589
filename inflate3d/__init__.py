"""inflate3d: 2D image ResNets into 3D video networks, and video checkpoints between codebases.

Importing the package is cheap; torch is imported only when a network is built.
"""
__version__ = "0.1.0"


def build_model(name, *, pretrained2d=None, method="mean", **kwargs):
    """Build a named architecture; see :func:`inflate3d.slowfast.archs.build_model`.

    ``pretrained2d``: bootstrap it from 2D weights in one line (a file, ``torchvision:resnet50``,
    ``seeded:resnet50:SEED``, a state dict or a 2D module), inflated with ``method`` by the engine
    of ``inflate3d inflate``; see :func:`inflate3d.inflate.inflater.build_inflated`.
    """
    if pretrained2d is not None:
        from .inflate.inflater import build_inflated

        return build_inflated(name, pretrained2d, method=method, **kwargs)
    from .slowfast.archs import build_model as _build

    return _build(name, **kwargs)


def inflate_into(model, source, *, method="mean", strict=False, **kwargs):
    """Inflate 2D ResNet weights into any 3D model whose structure corresponds; see
    :func:`inflate3d.inflate.into.inflate_into`."""
    from .inflate.into import inflate_into as _into

    return _into(model, source, method=method, strict=strict, **kwargs)


def load_model(path, **kwargs):
    """Any checkpoint -> its network, loaded strictly, eval mode; see
    :func:`inflate3d.inflate.load_model.load_model`."""
    from .inflate.load_model import load_model as _load

    return _load(path, **kwargs)


__all__ = ["__version__", "build_model", "inflate_into", "load_model"]
