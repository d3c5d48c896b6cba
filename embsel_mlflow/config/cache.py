"""The ``cache`` node of every scoring step: the embedding cache (``models/cache.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CacheConfig:
    """The on-disk embedding cache shared by every run and process (see models/cache.py)."""

    enabled: bool = True
    dir: str | None = None  # None: $EMBSEL_CACHE_DIR, else the user cache dir (~/.cache/embsel)
    max_size_gb: float = 5.0  # least recently used entries are evicted beyond this
