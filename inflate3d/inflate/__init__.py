"""2D -> 3D inflation: kernels (tensor maths), resnet2d + mapping (names), sources, inflater."""
from .inflater import Inflation, parse_head, prepare
from .kernels import METHODS, deflate_kernel, inflate_kernel, pad_columns_front, pad_in_channels
from .mapping import ACTIONS, COPY, FRESH, HEAD, INFLATE, Entry, Plan, plan_inflation
from .sources import Source2D, resolve_source, seeded_source

__all__ = ["ACTIONS", "COPY", "Entry", "FRESH", "HEAD", "INFLATE", "Inflation", "METHODS", "Plan",
           "Source2D", "deflate_kernel", "inflate_kernel", "pad_columns_front", "pad_in_channels",
           "parse_head", "plan_inflation", "prepare", "resolve_source", "seeded_source"]
