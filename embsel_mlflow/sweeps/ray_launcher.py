"""``hydra/launcher=ray``: a sweep's jobs as Ray tasks, on the cluster the config or ``RAY_ADDRESS`` names.

hydra-ray-launcher's ``RayLauncher`` (its config: ``ray.init`` for ``ray.init``, ``ray.remote``
for each task's ``num_cpus``/``num_gpus``/...), with its ``launch`` changed where it is wrong
for embsel:

- connecting to a running cluster (``ray.init.address`` or ``RAY_ADDRESS``) passes no
  ``object_store_memory``: the plugin always sets one, and ``ray.init`` refuses it when it
  connects; a Ray started for the sweep alone keeps the plugin's small default;
- Ctrl-C or SIGTERM while jobs run cancels their Ray tasks (``ray.cancel``: a running job gets
  KeyboardInterrupt, so its run ends KILLED; a queued one never starts), then re-raises, and the
  sweep callback closes the parent KILLED;
- a task that dies outside its job (its worker crashed, a failed import) is that job's failure,
  not the sweep's: the other jobs' results are kept;
- each task runs in the directory embsel was started in, where that exists on the node, so
  relative paths (``data.root``, ``sqlite:///mlflow.db``) mean what they mean with the other
  launchers, and it finds embsel's sweeper plugins (Hydra's state names their classes).

Every node must import the same embsel (``pip install "embsel-mlflow[ray]"`` on each, or
``hydra.launcher.ray.init.runtime_env``): tasks are pickled by reference to its modules.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher as PluginRayLauncher

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn

log = logging.getLogger("embsel.sweep")

# How long cancelled jobs get to close their runs KILLED before their workers are killed.
CANCEL_GRACE_S = 10.0
# The plugin's object store for a Ray started for the sweep (https://github.com/ray-project/ray/issues/11966)
LOCAL_OBJECT_STORE_BYTES = 78_643_200
POLL_S = 0.5  # ray.wait slices: a signal is handled between them


class RayLauncher(PluginRayLauncher):
    """hydra-ray-launcher's launcher, with the connection, cancellation and failures above."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if not sys.stderr.isatty():  # the jobs' lines reach the console without colour codes
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        import ray
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals
        from omegaconf import open_dict

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        if not ray.is_initialized():
            ray.init(**init_kwargs(_options(self.ray_cfg.init)))
        remote_options = _options(self.ray_cfg.remote)
        task = (
            ray.remote(**remote_options)(run_job_on_node) if remote_options else ray.remote(run_job_on_node)
        )
        # what every job shares, sent to the object store once
        shared = ray.put(
            ray.cloudpickle.dumps((self.hydra_context, self.task_function, Singleton.get_state()))
        )
        log.info("Ray launcher: %d jobs on %s", len(job_overrides), ray.get_runtime_context().gcs_address)
        loader = self.hydra_context.config_loader
        refs: list[Any] = []
        overrides_of: list[list[str]] = []
        with cancelled_on_exception(refs):  # a signal while submitting cancels what was submitted
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
                sweep_config = loader.load_sweep_config(self.config, list(overrides))
                with open_dict(sweep_config):
                    sweep_config.hydra.job.id = f"ray_job_{idx}"
                    sweep_config.hydra.job.num = idx
                refs.append(task.remote(os.getcwd(), shared, ray.cloudpickle.dumps(sweep_config)))
                overrides_of.append(list(overrides))
            pending = list(refs)
            while pending:  # short waits: Ctrl-C is handled between them
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
        return [_job_return(ref, overrides) for ref, overrides in zip(refs, overrides_of, strict=True)]


def _options(node: Any) -> dict[str, Any]:
    """A config node of keyword arguments (``ray.init``, ``ray.remote``) as a plain dict."""
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(node, resolve=True) if node is not None else None
    return {str(key): value for key, value in (options or {}).items()} if isinstance(options, dict) else {}


def init_kwargs(init: dict[str, Any]) -> dict[str, Any]:
    """``ray.init``'s arguments: the plugin's small object store only for a Ray started here."""
    if init.get("address") or os.environ.get("RAY_ADDRESS"):
        return init  # a running cluster: ray.init refuses object_store_memory
    return {"object_store_memory": LOCAL_OBJECT_STORE_BYTES, **init}


@contextlib.contextmanager
def cancelled_on_exception(refs: list[Any]) -> Iterator[None]:
    """On Ctrl-C, SIGTERM or any error in the block, cancel the tasks in ``refs`` and re-raise."""
    try:
        yield
    except BaseException:
        from embsel_mlflow.tracking.run import signals_held

        with signals_held():  # a second Ctrl-C must not leave tasks running
            cancel(refs)
        raise


def cancel(refs: list[Any]) -> None:
    """Cancel tasks: KeyboardInterrupt in a running job (its run ends KILLED), then force after a grace."""
    import ray

    for ref in refs:
        ray.cancel(ref)
    _, left = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S) if refs else ([], [])
    for ref in left:  # a job stuck in native code: its worker is killed, the callback closes its run
        ray.cancel(ref, force=True)
    if left:
        ray.wait(left, num_returns=len(left), timeout=CANCEL_GRACE_S)


def _job_return(ref: Any, overrides: list[str]) -> JobReturn:
    """The job's JobReturn, or a FAILED one when its task died outside the job."""
    import ray
    from hydra.core.utils import JobReturn, JobStatus

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        log.error("job %s: its Ray task failed: %s", " ".join(overrides), str(exc).splitlines()[0])
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=exc)


def run_job_on_node(cwd: str, shared: bytes, sweep_config: bytes) -> JobReturn:
    """One job in a Ray worker: Hydra's run_job (with the callbacks), in embsel's directory."""
    import ray
    from hydra_plugins.hydra_ray_launcher._launcher_util import _run_job

    from embsel_mlflow.sweeps.plugins import PLUGIN_ROOT

    if str(PLUGIN_ROOT) not in sys.path:  # Hydra's state names embsel's sweeper classes
        sys.path.append(str(PLUGIN_ROOT))
    if os.path.isdir(cwd):
        os.chdir(cwd)
    hydra_context, task_function, singleton_state = ray.cloudpickle.loads(shared)
    return _run_job(hydra_context, ray.cloudpickle.loads(sweep_config), task_function, singleton_state)
