"""Files: safe loading of checkpoints, container unwrapping, atomic writes, metadata."""
from .load import Checkpoint, load_checkpoint, sha256_file
from .save import atomic_output, write_pth, write_safetensors

__all__ = ["Checkpoint", "atomic_output", "load_checkpoint", "sha256_file", "write_pth",
           "write_safetensors"]
