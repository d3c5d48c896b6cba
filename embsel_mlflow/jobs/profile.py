"""``embsel profile``'s job: profile a dataset (or any table) against candidate models, as one MLflow run.

Compose -> ``profiling.profile_job_data`` -> log: metrics ``profile/<table>/<column>/...``,
``profile.json``, the HTML report, the tables as run inputs with their digests, findings as tags.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import ProfileJobConfig, TrackingConfig

if TYPE_CHECKING:
    from embsel_mlflow.profiling.profile import DataProfile
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "profile"
log = logging.getLogger("embsel.profile")


def profile_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> DataProfile:
    from omegaconf import OmegaConf

    from embsel_mlflow.jobs.run import job_run
    from embsel_mlflow.profiling.profile import profile_job_data

    data_name = OmegaConf.select(cfg, "data.name", default=None, throw_on_missing=False)
    table_path = OmegaConf.select(cfg, "table.path", default=None, throw_on_missing=False)
    name = tracking.run_name or f"profile {table_path or data_name or 'data'}"
    with job_run(STEP, cfg, tracking, overrides, ProfileJobConfig, run_name=name) as (run, job):
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
    from embsel_mlflow.tracking.descriptions import NOTE_TAG, profile_description

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
    findings = [(f.severity.value, f.code, f.message) for f in profile.findings]
    tags[NOTE_TAG] = profile_description(profile.name, profile.task, counts, findings)
    run.set_tags({"embsel.dataset": profile.name, "embsel.task": profile.task or "table", **tags})
