"""Where the package's own files are: the conf/ tree and the bundled demo datasets (no Hydra here,
so that every layer may ask)."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """The conf/ tree: inside the installed wheel, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent.parent  # embsel_mlflow/
    bundled = here / "conf"
    return bundled if bundled.is_dir() else here.parent / "conf"


def demo_data_dir() -> Path:
    """The bundled demo datasets (``embsel_mlflow/demo_data``, a folder each): package files, like conf/."""
    return Path(__file__).resolve().parent.parent / "demo_data"
