"""The run preamble every step shares: tracked run, version tags, config logging, typed config.

A step's job opens its run with ``job_run`` and works inside it; a nested run of a step (select's
pairs and fine-tunes) opens with ``child_run``. What goes wrong inside ends the run FAILED with
its reason (``tracking.run.tracked_run``), and ``jobs.app.run_app`` turns it into the one
``error:`` line and the exit code; a config that does not compose never reaches here (``run_app``
records that FAILED run itself).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from embsel_mlflow.config.compose import to_job_config

if TYPE_CHECKING:
    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.tracking.run_logger import RunLogger

T = TypeVar("T")
ConfigLogger = Callable[["RunLogger", Any, list[str]], None]


@contextlib.contextmanager
def job_run(
    step: str,
    cfg: Any,
    tracking: TrackingConfig,
    overrides: list[str],
    schema: type[T],
    *,
    run_name: str,
    tags: Mapping[str, str] | None = None,
    reopen_run_id: str | None = None,
    log_config: ConfigLogger | None = None,
    experiment_ui: bool = False,
    job_log: bool = False,
    on_open: Callable[[RunLogger], None] | None = None,
) -> Iterator[tuple[RunLogger, T]]:
    """Open the run of ``step``; yield ``(run, job)``, ``job`` being ``cfg`` (a DictConfig) as ``schema``.

    In order: the run (``tracking``; ``reopen_run_id`` continues an ended one), ``on_open(run)``
    (e.g. evaluate renames the run ``mlflow run`` created), the experiment's UI
    columns (``experiment_ui``), ``tags`` and the version tags, the config (``log_config(run, cfg,
    overrides)``, default ``tracking.config_logging.log_config``), then the typed config, whose
    error (one line) fails the run. ``job_log``: Hydra's job log is attached as ``logs/<file>``
    when the run ends, with the failure if any.
    """
    from embsel_mlflow.tracking import config_logging
    from embsel_mlflow.tracking.experiment_ui import prepare_experiment
    from embsel_mlflow.tracking.run import one_line, tracked_run
    from embsel_mlflow.tracking.system_tags import version_tags

    log_config = log_config or config_logging.log_config
    with tracked_run(tracking, entry_point=step, run_name=run_name, reopen_run_id=reopen_run_id) as run:
        failure: str | None = None
        try:
            if on_open is not None:
                on_open(run)
            if experiment_ui:
                prepare_experiment(run.client, run.experiment_id)
            run.set_tags({**(tags or {}), **version_tags()})
            log_config(run, cfg, overrides)
            yield run, to_job_config(cfg, schema, step)
        except BaseException as exc:
            failure = one_line(exc)
            raise
        finally:
            if job_log:
                attach_job_log(run, failure, step)


@contextlib.contextmanager
def child_run(
    step: str,
    job: Any,
    overrides: list[str],
    *,
    run_name: str,
    parent_run_id: str,
    tags: Mapping[str, str],
) -> Iterator[RunLogger]:
    """A run nested under ``parent_run_id``, tagged and configured as ``embsel <step>`` with ``job``
    (a typed job config, its ``tracking`` the store) would be."""
    from omegaconf import OmegaConf

    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run
    from embsel_mlflow.tracking.system_tags import version_tags

    with tracked_run(job.tracking, entry_point=step, run_name=run_name, parent_run_id=parent_run_id) as run:
        run.set_tags({**tags, **version_tags()})
        log_config(run, OmegaConf.structured(job), overrides)
        yield run


def attach_job_log(run: RunLogger, failure: str | None, step: str) -> None:
    """Hydra's job log (the root logger's file handler) as ``logs/<file>``, ending with the failure if any.

    The failure goes to the file only: the console already gets its one ``error:`` line.
    """
    log = logging.getLogger(f"embsel.{step}")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            if failure:
                handler.emit(
                    log.makeRecord(log.name, logging.ERROR, __file__, 0, "run failed: %s", (failure,), None)
                )
            handler.flush()
            run.log_artifact(handler.baseFilename, "logs")
