"""Hydra's basic (grid) sweeper, except that a failed job does not stop the sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


class GridSweeper(BasicSweeper):
    """The cartesian product of the sweep overrides, in batches of ``max_batch_size`` jobs.

    Hydra's BasicSweeper re-raises the first failed job after its batch, which skips the later
    batches and the callbacks' ``on_multirun_end``. Here every batch runs; each failed job is
    already a FAILED child run with its reason, and the sweep callback reports the failures
    and makes ``embsel`` exit non-zero.
    """

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        returns = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            self.validate_batch_is_legal(batch)
            returns.append(self.launcher.launch(batch, initial_job_idx=initial_job_idx))
            initial_job_idx += len(batch)
        return returns
