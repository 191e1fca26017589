"""Checkpoint diffing: across schemes (through native names) and across the 2D->3D inflation."""
from .checkpoints import DiffResult, diff_checkpoints
from .inflated import InflatedDiff, diff_inflated
from .metrics import TensorDiff, bit_equal, compare, relative_change

__all__ = ["DiffResult", "InflatedDiff", "TensorDiff", "bit_equal", "compare", "diff_checkpoints", "diff_inflated",
           "relative_change"]
