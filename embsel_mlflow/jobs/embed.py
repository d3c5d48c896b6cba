"""``embsel embed``'s job: encode a dataset's texts into the embedding cache on Ray, as one MLflow run.

Compose -> ``families.load_task_data`` -> ``encoding.encode_into_cache`` -> log: the counts (texts,
cache hits and misses, embeddings written), the throughput, the Ray nodes, ``embed.json``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import TrackingConfig
from embsel_mlflow.config.jobs import EmbedJobConfig

if TYPE_CHECKING:
    from embsel_mlflow.encoding import EncodeReport
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "embed"
log = logging.getLogger("embsel.embed")


def embed_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Encode ``data``'s texts with ``model`` into the cache; the objective is the texts per second."""
    from omegaconf import OmegaConf

    from embsel_mlflow.encoding import check_settings, encode_into_cache
    from embsel_mlflow.errors import ConfigError
    from embsel_mlflow.families import family_of, load_task_data
    from embsel_mlflow.jobs.run import job_run
    from embsel_mlflow.tracking.run_naming import job_run_name

    model_name = OmegaConf.select(cfg, "model.name", default="model", throw_on_missing=False)
    data_name = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    name = tracking.run_name or job_run_name(cfg, context="embed")
    tags = {"embsel.model": str(model_name), "embsel.dataset": str(data_name)}
    with job_run(STEP, cfg, tracking, overrides, EmbedJobConfig, run_name=name, tags=tags, job_log=True) as (
        run,
        job,
    ):
        check_settings(job.embed)  # before the data and the model load
        log.info("loading data '%s' (%s)", job.data.name, job.data.task)
        data = load_task_data(job.data)
        family = family_of(data)
        if set(family.modalities) != {"text"}:
            raise ConfigError(
                f"embsel embed encodes texts; data={job.data.name} embeds {sorted(family.modalities)}"
            )
        report = encode_into_cache(
            job.model, family.texts(data.examples), job.cache, job.embed, calibration_data=[job.data]
        )
        log_report(run, report)
        print(f"{job.model.name} on {data.name}: {report.summary()}  (run {run.run_id})")
    return report.texts_per_second


def log_report(run: RunLogger, report: EncodeReport) -> None:
    """The counts and throughput as metrics, the cluster as tags, the whole report as embed.json."""
    from dataclasses import asdict

    run.log_metrics(report.metrics())
    nodes = ", ".join(f"{node['address']} ({node.get('CPU', 0):g} CPU, {node.get('GPU', 0):g} GPU)"
                      for node in report.nodes)  # fmt: skip
    run.set_tags(
        {"embsel.embed.model_key": report.model_key, "embsel.ray.nodes": nodes or "none (all cached)"}
    )
    run.log_dict({**asdict(report), "texts_per_second": report.texts_per_second}, "embed.json")
