"""Make embsel's Hydra sweepers and launchers visible where Hydra looks for them.

Hydra instantiates a sweeper only from the ``hydra_plugins`` namespace package. Ours is shipped
inside this package (``hydra_plugin_root/hydra_plugins/embsel_sweepers``) so that the project
keeps a single top-level package; putting that root on ``sys.path`` merges it into the namespace
package next to other plugins (e.g. hydra-joblib-launcher) instead of shadowing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parent / "hydra_plugin_root"
SHIM = "hydra_plugins.embsel_sweepers.sweepers"  # the module under PLUGIN_ROOT that names our sweepers


def register_hydra_plugins() -> None:
    """Idempotent: our plugin root on the import path, and our sweepers and launchers known to Hydra.

    Hydra scans its plugins once per process, when they are first asked for. One that scanned
    before our root was on the path (a config composed earlier in the same process, e.g. from a
    notebook or a test) learns ours through ``Plugins.register``, Hydra's public way to add a
    plugin class; otherwise its scan finds them (and the shim module is imported once only).
    """
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    root = str(PLUGIN_ROOT)
    if root not in sys.path:
        sys.path.append(root)
    plugins = Plugins.instance()  # scans now, with our root on the path, unless it already has
    _drop_replaced_configs()
    known = {f"{cls.__module__}.{cls.__name__}" for cls in plugins.discover(Sweeper)}
    if f"{SHIM}.GridSweeper" in known:
        return
    from hydra_plugins.embsel_sweepers import launchers
    from hydra_plugins.embsel_sweepers.sweepers import GridSweeper, OptunaSweeper

    for plugin in (GridSweeper, OptunaSweeper, getattr(launchers, "RayLauncher", None)):
        if plugin is not None:  # the Ray launcher exists with the [ray] extra only
            plugins.register(plugin)


def _drop_replaced_configs() -> None:
    """Forget hydra-ray-launcher's ``hydra/launcher/ray`` node: conf/hydra/launcher/ray.yaml replaces it.

    Hydra would otherwise validate our yaml against the plugin's node of the same name (its
    deprecated "automatic schema matching") and warn on every ``hydra/launcher=ray`` run.
    """
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().repo.get("hydra", {}).get("launcher", {}).pop("ray.yaml", None)
