"""Check a sweep before it starts, so a bad config gives one line and a FAILED run, as a plain run does.

Without this Hydra would open the sweep, then stop on the first job that does not compose with
its multi-line report.
"""

from __future__ import annotations

from collections.abc import Callable

from embsel_mlflow.sweeps.overrides import parse_overrides, preflight_jobs


def check_sweep(
    step: str, overrides: list[str], preflight: Callable[[str, list[str]], str | None] | None = None
) -> str | None:
    """The one-line error of a sweep that cannot run, or None.

    ``preflight(step, overrides)``: the one-line error of one job's composition (default:
    ``config.compose.compose_error``).

    Composes every value of every enumerable sweep (see ``preflight_jobs``), then builds the
    sweeper from the composed ``hydra.sweeper`` (its own checks: direction, sampler, search space).
    """
    from hydra.utils import instantiate

    from embsel_mlflow.config.compose import compose_error, config_error_message
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.errors import EmbselError
    from embsel_mlflow.sweeps.plugins import register_hydra_plugins

    register_hydra_plugins()  # the sweeper is instantiated below
    preflight = preflight or compose_error

    try:
        jobs = preflight_jobs(overrides)
    except Exception as exc:  # Hydra's grammar errors
        return config_error_message(exc, step)
    for job in jobs:
        error = preflight(step, job)
        if error:
            return error
    try:
        sweeper = instantiate(compose_config(step, jobs[0], with_hydra=True).hydra.sweeper)
        search_space = getattr(sweeper, "search_space", None)
        if search_space is not None:
            search_space([o.input_line for o in parse_overrides(overrides) if not o.is_hydra_override()])
    except Exception as exc:  # instantiate wraps the sweeper's own ConfigError; unknown option, ...
        ours = exc if isinstance(exc, EmbselError) else exc.__cause__
        if isinstance(ours, EmbselError):
            return f"invalid sweep: {ours}"
        return config_error_message(exc, step)
    return None
