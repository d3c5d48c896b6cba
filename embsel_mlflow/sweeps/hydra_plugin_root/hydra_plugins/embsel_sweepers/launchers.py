"""embsel's Hydra launchers, registered where Hydra looks for them (see sweepers.py).

``hydra/launcher=ray`` (conf/hydra/launcher/ray.yaml) needs hydra-ray-launcher, the ``[ray]``
extra; without it this module defines nothing, so Hydra's plugin scan stays quiet.
"""

from importlib.util import find_spec

if find_spec("hydra_plugins.hydra_ray_launcher") is not None:
    from embsel_mlflow.sweeps.ray_launcher import RayLauncher as _RayLauncher

    class RayLauncher(_RayLauncher):
        """``hydra/launcher=ray``: each job a Ray task."""
