"""Composition checks shared by the Hydra apps and the sweeps: one line out of Hydra's errors.

``compose_error`` composes a step once up front (Hydra would print a multi-line report and no
MLflow run would record the failure); ``to_job_config`` turns a composed config into its typed
dataclass, with the same one-line error.
"""

from __future__ import annotations

from typing import Any, TypeVar

from embsel_mlflow.errors import ConfigError

T = TypeVar("T")


def config_error_message(exc: BaseException, step: str) -> str:
    """One line out of Hydra/OmegaConf's multi-line composition errors."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        for line in str(seen).splitlines():
            line = line.strip()
            if line and not line.startswith(("object_type=", "reference_type=")) and line not in parts:
                parts.append(line)
        seen = seen.__cause__ or seen.__context__
    detail = "; ".join(parts) or type(exc).__name__
    return f"invalid config: {detail} (valid keys: `embsel {step} --cfg job`)"


def compose_error(step: str, overrides: list[str]) -> str | None:
    """Compose ``step`` with ``overrides`` once; the one-line error if it does not compose."""
    from embsel_mlflow.config.store import compose_config

    try:
        compose_config(step, overrides)
    except Exception as exc:  # Hydra raises several unrelated exception types here
        return config_error_message(exc, step)
    return None


def to_job_config(cfg: Any, schema: type[T], step: str) -> T:
    """Resolve interpolations and convert to the typed dataclass; errors become one line."""
    from omegaconf import OmegaConf

    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:  # OmegaConf raises InterpolationResolutionError, ValidationError, ...
        raise ConfigError(config_error_message(exc, step).removeprefix("invalid config: ")) from exc
    if not isinstance(obj, schema):
        raise ConfigError(f"config did not convert to {schema.__name__}")
    # a job's EvaluationConfig (a DataConfig's `evaluation` is a mapping of its own overrides)
    evaluation: Any = getattr(obj, "evaluation", None)
    if getattr(evaluation, "show_progress", False) and not _stderr_is_terminal():
        # Progress bars are for people at a terminal: in a log file, CI or a pipe they are noise.
        evaluation.show_progress = False
    return obj


def _stderr_is_terminal() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def override_value(overrides: list[str], key: str) -> str | None:
    """The value ``key=value`` (or ``+key=value``) sets among ``overrides``, unquoted; None if unset."""
    for override in overrides:
        name, sep, value = override.lstrip("+").partition("=")
        if sep and name == key:
            return value.strip("'\"") or None
    return None
