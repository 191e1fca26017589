"""mmaction2's names are the native ones; backbone-only files lack the ``backbone.`` prefix."""
from .table import KeyTable

MMACTION2 = KeyTable.of("mmaction2", [
    ("backbone.{k**}", "backbone.{k**}"),
    ("cls_head.{k**}", "cls_head.{k**}"),
])
