"""ResNet depths as plain data (torch-free): blocks per stage and the block's channel expansion.
The networks (``resnet3d.STAGE_BLOCKS``) and the shape readers (``inflate/detect``, ``inspect``)
share this one table."""
from __future__ import annotations

# depth -> (block expansion: 1 basic, 4 bottleneck; blocks per stage)
STAGE_COUNTS: dict[int, tuple[int, tuple[int, int, int, int]]] = {
    18: (1, (2, 2, 2, 2)),
    34: (1, (3, 4, 6, 3)),
    50: (4, (3, 4, 6, 3)),
    101: (4, (3, 4, 23, 3)),
    152: (4, (3, 8, 36, 3)),
}
DEPTHS = tuple(STAGE_COUNTS)


def depth_of(blocks, bottleneck: bool) -> int | None:
    """The depth whose blocks per stage are ``blocks`` with that block kind, else None."""
    return next((d for d, (expansion, counts) in STAGE_COUNTS.items()
                 if counts == tuple(blocks) and (expansion == 4) == bottleneck), None)
