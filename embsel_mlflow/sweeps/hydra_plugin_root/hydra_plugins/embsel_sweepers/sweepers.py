"""embsel's Hydra sweepers, registered where Hydra looks for them.

Hydra instantiates a sweeper only if its class is defined under the ``hydra_plugins``
namespace package (``Plugins._instantiate`` refuses any other ``_target_``). The code lives in
``embsel_mlflow.sweeps``; these subclasses only give it a name Hydra accepts
(``embsel_mlflow.sweeps.plugins`` puts this folder's root on the import path).
"""

from embsel_mlflow.sweeps.grid import GridSweeper as _GridSweeper
from embsel_mlflow.sweeps.optuna_sweeper import OptunaSweeper as _OptunaSweeper


class GridSweeper(_GridSweeper):
    """``hydra/sweeper=grid`` (the default of every embsel step)."""


class OptunaSweeper(_OptunaSweeper):
    """``hydra/sweeper=optuna``."""
