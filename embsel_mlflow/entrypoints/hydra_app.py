"""Run a step as a real Hydra app, with one-line errors and a FAILED run on bad input."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from embsel_mlflow.config.schema import TrackingConfig
from embsel_mlflow.errors import ConfigError, EmbselError

T = TypeVar("T")
EXIT_BAD_INPUT = 2


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


def _override_value(overrides: list[str], key: str) -> str | None:
    for override in overrides:
        name, sep, value = override.lstrip("+").partition("=")
        if sep and name == key:
            return value.strip("'\"") or None
    return None


def preflight(step: str, overrides: list[str]) -> str | None:
    """Compose once up front; the one-line error if the config does not compose.

    Hydra would print a multi-line report and no MLflow run would record the failure.
    """
    from embsel_mlflow.config.store import compose_config

    try:
        compose_config(step, overrides)
    except Exception as exc:  # Hydra raises several unrelated exception types here
        return config_error_message(exc, step)
    return None


def run_app(step: str, job: Callable[[Any, TrackingConfig, list[str]], Any], args: list[str]) -> int:
    """Run ``job(cfg, tracking, overrides)`` as the Hydra app of ``step`` with ``args`` as its command line.

    ``job`` opens its run with ``tracking`` and must end it (see ``tracked_run``).
    """
    import hydra

    from embsel_mlflow.config.store import config_dir, register_configs
    from embsel_mlflow.tracking.run import record_failed_run

    register_configs()
    plain_run = not any(arg.startswith("-") for arg in args)  # no -m, --cfg, --help, ...
    if plain_run:
        error = preflight(step, args)
        if error:
            print(f"error: {error}", file=sys.stderr)
            tracking = TrackingConfig(
                uri=_override_value(args, "tracking.uri"),
                experiment=_override_value(args, "tracking.experiment") or TrackingConfig.experiment,
            )
            record_failed_run(
                tracking, entry_point=step, reason=error, run_name=f"{step} (invalid config)", overrides=args
            )
            return EXIT_BAD_INPUT

    def task(cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
        try:
            tracking = to_job_config(cfg.tracking, TrackingConfig, step)
        except EmbselError as exc:
            print(f"error: {exc}", file=sys.stderr)
            record_failed_run(
                TrackingConfig(),
                entry_point=step,
                reason=str(exc),
                run_name=f"{step} (invalid config)",
                overrides=overrides,
            )
            raise SystemExit(EXIT_BAD_INPUT) from None
        try:
            return job(cfg, tracking, overrides)
        except EmbselError as exc:
            # The run is already FAILED with the reason; the user gets one line, not a traceback.
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_BAD_INPUT) from None

    app = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=step)(task)
    saved_argv = sys.argv
    sys.argv = [f"embsel {step}", *args]  # Hydra parses sys.argv
    try:
        app()
    finally:
        sys.argv = saved_argv
    return 0


def to_job_config(cfg: Any, schema: type[T], step: str) -> T:
    """Resolve interpolations and convert to the typed dataclass; errors become one line."""
    from omegaconf import OmegaConf

    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:  # OmegaConf raises InterpolationResolutionError, ValidationError, ...
        raise ConfigError(config_error_message(exc, step).removeprefix("invalid config: ")) from exc
    if not isinstance(obj, schema):
        raise ConfigError(f"config did not convert to {schema.__name__}")
    return obj
