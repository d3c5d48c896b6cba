"""Where the small demo datasets bundled with the package live."""

from __future__ import annotations

from pathlib import Path


def demo_data_dir() -> Path:
    """Absolute path of the bundled ``demo_data`` directory (one sub-folder per demo dataset)."""
    return Path(__file__).resolve().parent.parent / "demo_data"
