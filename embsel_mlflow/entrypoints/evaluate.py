"""``embsel evaluate``: score one embedding model on one dataset, as one MLflow run."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import EvaluateJobConfig, TrackingConfig
from embsel_mlflow.entrypoints.hydra_app import run_app, to_job_config

if TYPE_CHECKING:
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "evaluate"
log = logging.getLogger("embsel.evaluate")


def evaluate_in_run(
    run: RunLogger, job: EvaluateJobConfig, data: TaskData, encoder: EmbeddingModel
) -> TaskResult:
    """Evaluate ``encoder`` on ``data`` and log everything ``embsel evaluate`` logs into ``run``.

    The one code path for a (model, dataset) pair: ``evaluate`` calls it once, ``select`` once
    per child run, so a child logs exactly what a plain evaluate run logs.
    """
    from embsel_mlflow.evaluation import build_task
    from embsel_mlflow.models.cache import cache_counts, cache_metrics
    from embsel_mlflow.tracking.results import efficiency_metrics, log_result
    from embsel_mlflow.tracking.system_tags import hardware_tags

    run.set_tags({"embsel.task": job.data.task.value})
    if job.tracking.log_datasets:
        run.log_datasets(data.tables, dataset_name=data.name)
    run.set_tags(
        {
            "embsel.model_source": encoder.source.path_or_id,
            "embsel.model_origin": encoder.source.origin,
            "embsel.model_sha256": encoder.source.sha256,
            **hardware_tags(encoder.device),
        }
    )
    started = time.perf_counter()
    cached_before = cache_counts(encoder)
    result = build_task(data, job.evaluation).evaluate(encoder)
    efficiency = efficiency_metrics(
        result, embedding_dim=encoder.embedding_dim, num_parameters=encoder.num_parameters
    )
    efficiency.update(cache_metrics(encoder, cached_before))  # cache_hits / cache_misses (texts)
    efficiency["eval_seconds"] = time.perf_counter() - started
    log_result(run, result, efficiency=efficiency, log_per_item=job.tracking.log_per_item)
    return result


def evaluate_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Compose -> load data -> load model -> evaluate, logging each stage as soon as it is known."""
    from omegaconf import OmegaConf

    from embsel_mlflow.data.task_loader import load_task_data
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.models.factory import build_encoder
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run
    from embsel_mlflow.tracking.system_tags import version_tags

    model_name = OmegaConf.select(cfg, "model.name", default="model", throw_on_missing=False)
    data_name = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    run_name = tracking.run_name or f"{model_name}@{data_name}"
    with tracked_run(tracking, entry_point=STEP, run_name=run_name) as run:
        run.set_tags({"embsel.model": model_name, "embsel.dataset": data_name, **version_tags()})
        log_config(run, cfg, overrides)
        job = to_job_config(cfg, EvaluateJobConfig, STEP)

        log.info("loading data '%s' (%s)", job.data.name, job.data.task.value)
        data = load_task_data(job.data)
        log.info("loading model '%s' (%s)", job.model.name, job.model.name_or_path)
        encoder = build_encoder(job.model, cache=open_cache(job.cache)).for_dataset(data)
        result = evaluate_in_run(run, job, data, encoder)
        run_id = run.run_id

    print(
        f"{job.model.name} on {data.name} [{data.split}]: {result.main_score_name} = {result.main_score:.5f}"
        f"  (run {run_id})"
    )
    return result.main_score


def main(args: list[str]) -> int:
    return run_app(STEP, evaluate_job, args)
