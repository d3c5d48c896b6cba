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
    """Idempotent: our plugin root on the import path, and our sweepers known to Hydra's plugins.

    Hydra scans its plugins once per process. One that scanned before our root was on the path (a
    config composed earlier in the same process, e.g. from a notebook or a test) learns ours
    through ``Plugins.register``, Hydra's public way to add a plugin class.
    """
    from hydra.core.plugins import Plugins

    root = str(PLUGIN_ROOT)
    if root not in sys.path:
        sys.path.append(root)
    from hydra_plugins.embsel_sweepers.sweepers import GridSweeper, OptunaSweeper

    plugins = Plugins.instance()
    for sweeper in (GridSweeper, OptunaSweeper):
        plugins.register(sweeper)
