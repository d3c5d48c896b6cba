"""Resident memory while encoding: freed activation-sized blocks go back to the OS (glibc only)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Runs in a fresh interpreter: malloc's dynamic threshold is process state that pytest's own
# imports (torch, pandas) have already moved.
CODE = """
import numpy as np
from embsel_mlflow.models.memory import release_memory_before_encoding

def in_heap(array):
    addr = array.ctypes.data
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            return low <= addr < high
    return False

big = np.ones(1 << 20); del big  # an 8 MiB block freed: glibc now serves up to 8 MiB from its heap
before = np.ones(1 << 18)  # 2 MiB, like one activation tensor of a batch
print(in_heap(before)); del before
release_memory_before_encoding()
after = np.ones(1 << 18)
print(in_heap(after))
release_memory_before_encoding()  # idempotent
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc malloc only"
)
def test_activation_sized_blocks_are_mapped_so_freeing_them_returns_the_memory() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    # before: the block sits in the heap, whose freed pages malloc keeps (and fragments);
    # after: it has its own mapping, unmapped (returned to the OS) when the tensor is freed
    assert out.split() == ["True", "False"]
