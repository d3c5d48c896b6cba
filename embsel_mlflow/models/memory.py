"""Resident memory while a model encodes: hand freed memory back to the OS instead of keeping it.

Two things make a process hold far more memory than it uses at any moment while a transformer
encodes on CPU, both in glibc's malloc:

- its *dynamic mmap threshold*: the first freed activation tensor (a few MiB) raises the size
  from which blocks are mmapped, up to 32 MiB, so later activations come from the heap, whose
  freed pages are kept and fragment batch after batch (sentence-transformers' own evaluator
  peaked at 1245 MiB on 800 SciFact documents with MiniLM, 975 MiB with the threshold fixed);
- pages freed by loading data, hashing it and importing libraries, kept by malloc and by
  Arrow's memory pool, which torch cannot reuse.

:func:`release_memory_before_encoding` fixes the threshold at 1 MiB (larger blocks are mmapped
and unmapped when freed: resident memory follows the tensors that are alive) and trims both
allocators. It changes no result. Linux with glibc only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform
import sys

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20  # blocks from 1 MiB up (activations, embeddings) get their own mapping


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def _fix_mmap_threshold() -> bool:
    """Once per process: mmap blocks from 1 MiB up, whatever malloc's dynamic threshold reached."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_memory_before_encoding() -> None:
    """Fix malloc's mmap threshold (once) and give the memory freed so far back to the OS."""
    import gc

    gc.collect()  # the data loaders' and hashing's reference cycles, before trimming
    if "pyarrow" in sys.modules:  # pandas' string columns and the data readers allocate there
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    libc = _glibc()
    if libc is None:
        return
    _fix_mmap_threshold()
    libc.malloc_trim(0)
