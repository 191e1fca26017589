"""Torch's intra-op threads: one for the work on weights, all of them for forward passes.

Copying, inflating, comparing and screening weights is elementwise and memory-bound: a second
thread gains nothing, and a parallel region's threads spin while they wait for each other, which
on a busy machine costs more than the work (measured on 2 cores with the other core busy:
``inflate`` R50 -> SlowFast-R50 --no-verify took 1.2 s more CPU and 1.3 s more wall time with 2
threads than with 1). Every such result is the same whatever the thread count (elementwise ops;
the screens are yes/no), so the bytes written do not change.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def threads(n: int) -> Iterator[int]:
    """Run the block with ``n`` intra-op threads (restored after); yields the previous count."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield before
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class OneThread:
    """``with OneThread() as one:`` ... ``one.begin()`` where the work on weights starts (after the
    torch-free checks, which must not import torch) ... ``with one.every():`` around forward passes.
    The thread count from before ``begin`` is restored on exit."""

    def __init__(self) -> None:
        self.before = 0

    def begin(self) -> None:
        from .torch_import import import_torch

        torch = import_torch()
        if not self.before:
            self.before = torch.get_num_threads()
            torch.set_num_threads(1)

    def every(self):
        """A block with the threads the process had before ``begin``."""
        import torch

        return threads(self.before or torch.get_num_threads())

    def __enter__(self) -> OneThread:
        return self

    def __exit__(self, *exc) -> None:
        if self.before:
            import torch

            torch.set_num_threads(self.before)
            self.before = 0
