"""Make embsel's Hydra sweepers visible where Hydra looks for them.

Hydra instantiates a sweeper only from the ``hydra_plugins`` namespace package. Ours is shipped
inside this package (``hydra_plugin_root/hydra_plugins/embsel_sweepers``) so that the project
keeps a single top-level package; putting that root on ``sys.path`` merges it into the namespace
package next to other plugins (e.g. hydra-joblib-launcher) instead of shadowing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parent / "hydra_plugin_root"


def register_hydra_plugins() -> None:
    """Idempotent: add our plugin root to the import path once, before Hydra scans its plugins."""
    root = str(PLUGIN_ROOT)
    if root not in sys.path:
        sys.path.append(root)
