"""Run a step as a real Hydra app, with one-line errors and a FAILED run on bad input.

Every way out of ``run_app`` is one of: success (0); ``error: <one line>`` and exit 2 (bad
input, unusable store or filesystem; the run FAILED where one could be opened); or a signal
(Ctrl-C 130, SIGHUP 129, SIGTERM 143) with ``error: <one line>`` and the run KILLED. Secrets
never reach the console: stdout and stderr are redacted while the app runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from embsel_mlflow.config import TrackingConfig
from embsel_mlflow.config.compose import config_error_message, override_value, to_job_config
from embsel_mlflow.errors import ConfigError, EmbselError

__all__ = ["EXIT_BAD_INPUT", "app_output_dir", "config_error_message", "preflight", "report", "run_app"]
__all__ += ["to_job_config", "unknown_option_error"]
EXIT_BAD_INPUT = 2
# Hydra's command-line flags that take a value (hydra._internal.utils.get_args_parser).
_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn"}
_FLAGS_WITH_VALUE |= {"--config-dir", "-cd", "--experimental-rerun"}
# Third-party warnings that say nothing to an embsel user (stderr is for progress and errors).
KNOWN_HARMLESS_WARNINGS = (
    # mlflow.data, for every local table logged as a run input: the source it picks is right
    r"The specified dataset source can be interpreted in multiple ways",
)


def split_flags(args: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """Hydra's flags (``--cfg job``, ``-m``, ...) and the overrides among ``args``."""
    flags: dict[str, str | None] = {}
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            overrides.append(arg)
        elif "=" in arg and arg.split("=", 1)[0] in _FLAGS_WITH_VALUE:
            name, value = arg.split("=", 1)
            flags[name] = value
        elif arg in _FLAGS_WITH_VALUE:
            flags[arg] = args[i + 1] if i + 1 < len(args) else None
            i += 1
        else:
            flags[arg] = None
        i += 1
    return flags, overrides


def preflight(step: str, overrides: list[str]) -> str | None:
    """Compose once up front; the one-line error if the config does not compose, or names a task
    family or a candidate kind that is not registered.

    Hydra would print a multi-line report and no MLflow run would record the failure.
    """
    from embsel_mlflow.config.store import compose_config

    try:
        cfg = compose_config(step, overrides)
    except Exception as exc:  # Hydra raises several unrelated exception types here
        return config_error_message(exc, step)
    return unregistered_error(cfg, step)


def unregistered_error(cfg: Any, step: str) -> str | None:
    """One line for a ``data.task`` or ``model.kind`` (anywhere in the config) no family or kind claims.

    The schema types them as ``str`` so that a plug-in can register new ones; the registries
    check them here, before any run starts, as the schema's enums once did at compose time.
    """
    from omegaconf import OmegaConf

    from embsel_mlflow.candidates import check_kinds
    from embsel_mlflow.config import ModelConfig, TrainConfig
    from embsel_mlflow.config.model import check_remote_code_switch
    from embsel_mlflow.config.train import check_optimisation
    from embsel_mlflow.config.walk import nodes_of
    from embsel_mlflow.families import check_families

    try:
        typed = OmegaConf.to_object(cfg)
    except Exception:  # a missing or mistyped value: to_job_config reports it in the run
        return None
    try:
        check_families(typed)
        check_kinds(typed)
        for model in nodes_of(typed, ModelConfig):  # remote code has one switch, the logged one
            check_remote_code_switch(model)
        for train in nodes_of(typed, TrainConfig):  # a fine-tune that would learn nothing
            check_optimisation(train)
    except ConfigError as exc:
        return f"invalid config: {exc} (valid keys: `embsel {step} --cfg job`)"
    return None


def output_dir_problem(args: list[str], multirun: bool) -> str | None:
    """Why Hydra could not write its output dir (the job log), or None: tried for real, since
    permission bits do not tell (root, read-only mounts, ACLs)."""
    key, default = ("hydra.sweep.dir", "multirun") if multirun else ("hydra.run.dir", "outputs")
    configured = override_value(args, key) or default
    target = Path(configured.split("$", 1)[0] or ".").expanduser()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return (
            f"cannot write Hydra's output dir {target.resolve()} ({reason}); run from a writable "
            f"directory or set {key}=/writable/path"
        )
    return None


@contextlib.contextmanager
def _console_redacted() -> Iterator[None]:
    """Whatever reaches stdout/stderr while the app runs (Hydra's --cfg, warnings) is redacted."""
    from embsel_mlflow.tracking.secrets import RedactingStream

    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def report(message: str) -> None:
    """The one ``error:`` line, secrets masked."""
    from embsel_mlflow.tracking.secrets import redact

    print(f"error: {redact(' '.join(message.split()))}", file=sys.stderr)


Job = Callable[[Any, TrackingConfig, list[str]], Any]


def run_app(step: str, job: Job, args: list[str], *, check_options: bool = False) -> int:
    """Run ``job(cfg, tracking, overrides)`` as the Hydra app of ``step`` with ``args`` as its command line;
    the exit code.

    ``job`` opens its run with ``tracking`` and must end it (``jobs.run.job_run`` does both).
    ``check_options``: ``candidates=[...]`` / ``datasets=[...]`` / ``windows=[...]`` must name configs
    that exist (in conf/ or a ``hydra.searchpath`` dir), else one line, a FAILED run and exit 2.
    """
    from embsel_mlflow.tracking.run import (
        SIGNAL_EXIT_CODES,
        RunTerminated,
        interrupted_line,
        terminate_on_signals,
    )
    from embsel_mlflow.tracking.secrets import mask_override, remember_environment_secrets

    _register_plugins()
    if check_options and not _options_exist(step, args):
        return EXIT_BAD_INPUT
    remember_environment_secrets()
    for arg in args:
        mask_override(arg)  # remembers the secret values typed on the command line
    if not sys.stderr.isatty():
        # MLflow's artifact download bar is for terminals too (a from_run or registered model).
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # huggingface_hub's switch, which transformers' bars follow ("Writing model shards" on
        # every save); read when they are first imported, which is after this.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with _console_redacted(), terminate_on_signals(), warnings.catch_warnings():
        for message in KNOWN_HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        try:
            return _run_app(step, job, args)
        except RunTerminated as exc:
            report(interrupted_line(exc))
            return exc.exit_code
        except KeyboardInterrupt as exc:
            report(interrupted_line(exc))
            return SIGNAL_EXIT_CODES[signal.SIGINT]


def _run_app(step: str, job: Job, args: list[str]) -> int:
    import hydra

    from embsel_mlflow.config.deletions import deletions_to_defaults
    from embsel_mlflow.config.store import SCHEMAS, config_dir, register_configs
    from embsel_mlflow.sweeps.callback import closing_sweeps, sweep_exit_code
    from embsel_mlflow.sweeps.preflight import check_sweep
    from embsel_mlflow.tracking.run import record_failed_run
    from embsel_mlflow.tracking.store import is_store_failure, resolve_tracking_uri, store_error

    register_configs()
    args = deletions_to_defaults(args, SCHEMAS[step])  # ~key of a schema field = its default
    flags, overrides = split_flags(args)
    cli_overrides = overrides
    hydra_errors = _HydraErrors()
    plain_run = not flags  # no -m, --cfg, --help, ...
    show_config = "--cfg" in flags or "-c" in flags
    multirun = "-m" in flags or "--multirun" in flags
    sweep = multirun and len(flags) == 1  # -m alone: a sweep to run (not --cfg, --help)
    # A plain run is checked on the config Hydra composes for it (composing once more up front
    # cost 0.25 s of every run); a sweep or --cfg is checked up front.
    if show_config or sweep:
        error = check_sweep(step, overrides, preflight) if multirun else preflight(step, overrides)
        if error:
            report(error)
            if sweep:  # --cfg runs nothing, so it records nothing
                _record_failure(step, overrides, error, record_failed_run)
            return EXIT_BAD_INPUT
    if plain_run or multirun:
        error = output_dir_problem(overrides, multirun)
        if error:
            report(error)
            if plain_run:
                _record_failure(step, overrides, error, record_failed_run)
            return EXIT_BAD_INPUT

    started = False

    def task(cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        nonlocal started
        started = True
        hydra_errors.restore()  # the job's own failures are Hydra's to report, as always
        if plain_run:
            problem = unregistered_error(cfg, step)
            if problem:
                report(problem)
                _record_failure(step, cli_overrides, problem, record_failed_run)
                raise SystemExit(EXIT_BAD_INPUT)
        _redact_hydra_files()
        _skip_worker_exit_collection()
        overrides = list(HydraConfig.get().overrides.task)
        try:
            tracking = to_job_config(cfg.tracking, TrackingConfig, step)
        except EmbselError as exc:
            report(str(exc))
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
            report(str(exc))
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # one failed job: Hydra records it and the sweep goes on
            raise SystemExit(EXIT_BAD_INPUT) from None
        except Exception as exc:
            if not is_store_failure(exc):
                raise  # a bug: keep its traceback
            error = store_error(exc, resolve_tracking_uri(tracking.uri))
            report(str(error))
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise error from None  # one failed job (e.g. a server restarting): the sweep goes on
            raise SystemExit(EXIT_BAD_INPUT) from None

    app = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=step)(task)
    saved_argv = sys.argv
    sys.argv = [f"embsel {step}", *args]  # Hydra parses sys.argv
    try:
        if not multirun:
            try:
                with hydra_errors.raised(plain_run):
                    app()
            except Exception:
                if started:
                    raise
                # Hydra could not compose the config: the one line says why, and a FAILED run.
                error = preflight(step, cli_overrides)
                if error is None:
                    raise
                report(error)
                _record_failure(step, cli_overrides, error, record_failed_run)
                return EXIT_BAD_INPUT
            return 0
        with closing_sweeps():  # a sweep stopped early still closes its parent run
            app()
        return sweep_exit_code()
    finally:
        sys.argv = saved_argv


class _HydraErrors:
    """Hydra prints a failure to compose as a report and exits 1; while ``raised``, it raises it
    (its ``HYDRA_FULL_ERROR`` switch, read when the error happens) until ``restore``."""

    _NAME = "HYDRA_FULL_ERROR"

    def __init__(self) -> None:
        self._saved: str | None = None
        self._set = False

    @contextlib.contextmanager
    def raised(self, on: bool = True) -> Iterator[None]:
        if on:
            self._saved, self._set = os.environ.get(self._NAME), True
            os.environ[self._NAME] = "1"
        try:
            yield
        finally:
            self.restore()

    def restore(self) -> None:
        if not self._set:
            return
        self._set = False
        if self._saved is None:
            os.environ.pop(self._NAME, None)
        else:
            os.environ[self._NAME] = self._saved


def _options_exist(step: str, args: list[str]) -> bool:
    """The multi-select options in ``args`` exist; else one line, a FAILED run (a real run) and False."""
    from embsel_mlflow.config.store import register_configs, searchpath_dirs
    from embsel_mlflow.tracking.run import record_failed_run

    # model/data configs in a hydra.searchpath dir can be candidates/datasets too
    register_configs(searchpath_dirs(args))
    error = unknown_option_error(args)
    if error is None:
        return True
    report(error)
    if not any(arg.startswith("-") for arg in args):  # a real run (not --cfg/--help): record it
        _record_failure(step, args, error, record_failed_run)
    return False


def _register_plugins() -> None:
    """What the configs need from the layers above config: the sweepers' plugin root on the path."""
    from embsel_mlflow.sweeps.plugins import register_hydra_plugins

    register_hydra_plugins()


def unknown_option_error(args: list[str]) -> str | None:
    """One line for ``candidates=[...]`` / ``datasets=[...]`` naming a config that does not exist."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from embsel_mlflow.config.store import MULTI_SELECT_GROUPS, group_options, searchpath_dirs

    plain = [arg for arg in args if not arg.startswith("-")]
    search_dirs = searchpath_dirs(plain)
    parser = OverridesParser.create()
    parsed = []
    for arg in plain:
        try:
            parsed += parser.parse_overrides([arg])
        except Exception:  # not an override (e.g. the `job` of `--cfg job`) or bad syntax: Hydra reports it
            continue
    for override in parsed:
        group = override.key_or_group
        if group not in MULTI_SELECT_GROUPS or override.is_delete():
            continue
        value = override.value()
        names = value if isinstance(value, list) else [value]
        options = group_options(MULTI_SELECT_GROUPS[group], search_dirs)
        for name in names:
            if str(name) not in options:
                what = {"candidates": "candidate", "windows": "window"}.get(group, "dataset")
                return (
                    f"unknown {what} '{name}': {group}=[...] takes {MULTI_SELECT_GROUPS[group]} configs "
                    f"from conf/{MULTI_SELECT_GROUPS[group]}/: {', '.join(options)}"
                )
    return None


def _skip_worker_exit_collection() -> None:
    """In a launcher's worker process (joblib's loky workers), skip Python's exit-time collection.

    The sweep waits for its workers to exit, and each one's last collection walks every object
    torch, transformers and mlflow left: about 5 s at the end of a 2-worker sweep, as the CLI saw
    for itself (cli._skip_exit_collection). Frozen objects are skipped; at-exit handlers still run.
    """
    import atexit
    import gc
    import multiprocessing

    if multiprocessing.current_process().name == "MainProcess":
        return  # the command itself: the CLI freezes as it ends (library callers keep their GC)
    atexit.unregister(gc.freeze)  # once per worker, however many jobs it runs
    atexit.register(gc.freeze)


def _record_failure(step: str, overrides: list[str], reason: str, record_failed_run: Callable) -> None:
    """A FAILED run for a job that could not start, in the store the overrides name (best effort)."""
    tracking = TrackingConfig(
        uri=override_value(overrides, "tracking.uri"),
        experiment=override_value(overrides, "tracking.experiment") or TrackingConfig.experiment,
    )
    record_failed_run(
        tracking, entry_point=step, reason=reason, run_name=f"{step} (invalid config)", overrides=overrides
    )


def record_unparsed_overrides(step: str, reason: str) -> None:
    """The run ``mlflow run`` created ends FAILED with ``reason`` (its ``overrides`` did not split),
    so it carries the error tag and description any other bad input leaves."""
    from embsel_mlflow.tracking.run import record_failed_run

    record_failed_run(TrackingConfig(), entry_point=step, reason=reason, run_name=f"{step} (invalid config)")


def _redact_hydra_files() -> None:
    """Hydra saves the raw overrides (multirun.yaml; .hydra/ if a user turns it back on): mask them."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from embsel_mlflow.tracking.secrets import redact

    hydra_cfg = HydraConfig.get()
    files: list[Path] = []
    if hydra_cfg.mode == RunMode.MULTIRUN:
        files.append(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    if hydra_cfg.output_subdir is not None:
        files += Path(hydra_cfg.runtime.output_dir, hydra_cfg.output_subdir).glob("*.yaml")
    for path in files:
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8")
            masked = redact(text)
            if masked != text:
                path.write_text(masked, encoding="utf-8")


def app_output_dir() -> Path | None:
    """The running Hydra app's output dir; None when called as a library."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import MissingMandatoryValue

    try:
        return Path(HydraConfig.get().runtime.output_dir).resolve()
    # Outside a Hydra app (ValueError), or after an earlier in-process app left Hydra's config
    # behind without a run dir (MissingMandatoryValue).
    except (ValueError, MissingMandatoryValue):
        return None
