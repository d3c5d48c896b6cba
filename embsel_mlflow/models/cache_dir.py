"""Where embsel keeps what it computes once per machine: embeddings, derived models, file hashes."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "EMBSEL_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$EMBSEL_CACHE_DIR``, else the user's cache dir (e.g. ``~/.cache/embsel``)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("embsel"))
