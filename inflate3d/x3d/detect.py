"""Whether a set of keys is an X3D checkpoint, and in which scheme (torch-free: ``inspect`` and
``families`` ask this before anything imports the networks)."""
from __future__ import annotations

# A key only an X3D checkpoint of each scheme has (its stem), for detection
STEM_KEYS = {"mmaction2": "backbone.conv1_s.conv.weight", "pyslowfast": "s1.pathway0_stem.conv_xy.weight",
             "pytorchvideo": "blocks.0.conv.conv_t.weight"}


def detect_scheme(keys) -> str | None:
    """The scheme of an X3D checkpoint, from its stem's key; ``None`` for any other network."""
    ks = set(keys)
    return next((name for name, stem in STEM_KEYS.items() if stem in ks), None)
