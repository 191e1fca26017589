"""2D -> 3D inflation and conversion: kernels (tensor maths), resnet2d + mapping (names),
sources, inflater, schemes + detect + convert; into (any 3D model, aligned by structure).

Exports load on first use (PEP 562), so ``convert`` does not import the inflater and its sources.
"""
from importlib import import_module

_EXPORTS = {
    "Inflation": "inflater", "parse_head": "inflater", "prepare": "inflater",
    "METHODS": "kernels", "deflate_kernel": "kernels", "inflate_kernel": "kernels", "kernel_method": "kernels",
    "pad_columns_front": "kernels", "pad_in_channels": "kernels",
    "ACTIONS": "mapping", "COPY": "mapping", "FRESH": "mapping", "HEAD": "mapping", "INFLATE": "mapping",
    "Entry": "mapping", "Plan": "mapping", "plan_inflation": "mapping",
    "Source2D": "sources", "resolve_source": "sources", "seeded_source": "sources",
    "IntoReport": "into", "inflate_into": "into",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
