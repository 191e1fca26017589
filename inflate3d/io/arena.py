"""Big buffers that fault in cheaply (anonymous memory in huge pages where the system has them),
and filling a buffer from a file.

Filling 100 MB of fresh 4 KiB pages takes 25,000 page faults; on a thread beside another that is
busy faulting in pages of its own (``import torch`` mapping its libraries, a writer computing
tensors) they slow each other down (~0.07 s for 100 MB here). Huge pages take ~50 faults.
Anonymous memory, not a file mapping: nothing can vanish under it (no SIGBUS).
"""
from __future__ import annotations

import mmap
import os

SMALL = 2 << 20  # below one huge page: an ordinary bytearray


def arena(size: int) -> bytearray | mmap.mmap:
    """A zero-filled, writable buffer of ``size`` bytes."""
    if size < SMALL:
        return bytearray(size)
    try:
        buf = mmap.mmap(-1, size)
    except (OSError, ValueError):
        return bytearray(size)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
    return buf


def fill(fd: int, view: memoryview, offset: int) -> bool:
    """Fill ``view`` from ``fd`` at ``offset`` with positioned reads (no shared seek), resuming
    after short reads; False if the file ends first."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n <= 0:
            return False
        got += n
    return True
