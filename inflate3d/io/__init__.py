"""Files: safe loading of checkpoints, container unwrapping, atomic writes, metadata.

Names are imported on first use, so torch-free parts (``io.safetensors_header``) stay torch-free.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"Checkpoint": "load", "load_checkpoint": "load", "sha256_file": "load",
            "atomic_output": "save", "write_pth": "save", "write_safetensors": "save",
            "read_header": "safetensors_header"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
