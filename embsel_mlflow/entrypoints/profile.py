"""``embsel profile``: profile a dataset (or any table) against candidate models, as one MLflow run.

Compose -> ``profiling.profile_job_data`` -> log: metrics ``profile/<table>/<column>/...``,
``profile.json``, the HTML report, the tables as run inputs with their digests, findings as tags.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import ProfileJobConfig, TrackingConfig
from embsel_mlflow.entrypoints.hydra_app import EXIT_BAD_INPUT, run_app, to_job_config

if TYPE_CHECKING:
    from embsel_mlflow.profiling.profile import DataProfile
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "profile"
log = logging.getLogger("embsel.profile")


def profile_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> DataProfile:
    from omegaconf import OmegaConf

    from embsel_mlflow.profiling.profile import profile_job_data
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run
    from embsel_mlflow.tracking.system_tags import version_tags

    data_name = OmegaConf.select(cfg, "data.name", default=None, throw_on_missing=False)
    table_path = OmegaConf.select(cfg, "table.path", default=None, throw_on_missing=False)
    name = tracking.run_name or f"profile {table_path or data_name or 'data'}"
    with tracked_run(tracking, entry_point=STEP, run_name=name) as run:
        run.set_tags(version_tags())
        log_config(run, cfg, overrides)
        job = to_job_config(cfg, ProfileJobConfig, STEP)
        profile = profile_job_data(
            job.data, table=job.table, table_root=job.table_root, candidates=job.candidates, cfg=job.profile
        )
        log_profile(run, profile, job)
        print(profile.summary())
        print(f"(run {run.run_id})")
    return profile


def log_profile(run: RunLogger, profile: DataProfile, job: ProfileJobConfig) -> None:
    """Metrics, profile.json, the HTML report, dataset inputs with digests, findings as tags."""
    from embsel_mlflow.profiling.findings import severity_counts

    refs = run.log_datasets(profile.tables, dataset_name=profile.name, log_inputs=job.tracking.log_datasets)
    run.log_metrics(profile.metrics())
    run.log_dict(profile.to_dict(), "profile.json")
    if job.profile.report_html:
        from embsel_mlflow.profiling.report import html_report

        run.log_text(html_report(profile), "profile.html")
    counts = severity_counts(profile.findings)
    tags: dict[str, int | str] = {f"embsel.profile.{severity}": count for severity, count in counts.items()}
    by_code: dict[str, list[str]] = {}
    for finding in profile.findings:
        by_code.setdefault(f"embsel.profile.finding.{finding.severity.value}.{finding.code}", []).append(
            finding.message
        )
    tags.update({key: " | ".join(messages) for key, messages in by_code.items()})
    # the digest of each table: evaluate/select runs on the same data can find this profile
    tags.update({f"embsel.profile.digest.{role}": ref.digest for role, ref in refs.items()})
    run.set_tags({"embsel.dataset": profile.name, "embsel.task": profile.task or "table", **tags})


def main(args: list[str]) -> int:
    from embsel_mlflow.config.store import register_configs, searchpath_dirs
    from embsel_mlflow.entrypoints.hydra_app import _record_failure, report
    from embsel_mlflow.entrypoints.select import unknown_option_error
    from embsel_mlflow.tracking.run import record_failed_run

    register_configs(searchpath_dirs(args))  # model configs in a hydra.searchpath dir can be candidates
    error = unknown_option_error(args)
    if error:
        report(error)
        if not any(arg.startswith("-") for arg in args):  # a real run (not --cfg/--help): record it
            _record_failure(STEP, args, error, record_failed_run)
        return EXIT_BAD_INPUT
    return run_app(STEP, profile_job, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
