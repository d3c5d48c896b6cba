"""``embsel evaluate``'s job: score one embedding model on one dataset, as one MLflow run.

``evaluate_in_run`` is the one scored-pair path (evaluate, select's children, train's tuned model,
monitor's quality checks) and ``scoring_job`` the one constructor of its config.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import EvaluateJobConfig, TrackingConfig

if TYPE_CHECKING:
    from embsel_mlflow.candidates import BuildContext
    from embsel_mlflow.config import DataConfig, ModelConfig, ScoringJobConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "evaluate"
log = logging.getLogger("embsel.evaluate")


def scoring_job(parent: ScoringJobConfig, *, model: ModelConfig, data: DataConfig) -> EvaluateJobConfig:
    """The ``embsel evaluate`` config of the pair (``model``, ``data``) inside the job ``parent`` (a
    select, train or monitor job config): its evaluation, tracking, cache and profile settings."""
    return EvaluateJobConfig(
        model=model,
        data=data,
        tracking=parent.tracking,
        evaluation=parent.evaluation,
        cache=parent.cache,
        profile=parent.profile,
    )


def guard_context(job: ScoringJobConfig) -> BuildContext:
    """What the modality guard needs to ask a candidate what it embeds: the store a ``from_run``
    model's run is in, and the cache it is downloaded into once."""
    from embsel_mlflow.candidates import BuildContext
    from embsel_mlflow.models.cache import open_cache

    return BuildContext(cache=open_cache(job.cache), tracking_uri=job.tracking.uri)


def evaluate_in_run(
    run: RunLogger, job: EvaluateJobConfig, data: TaskData, encoder: EmbeddingModel
) -> TaskResult:
    """Evaluate ``encoder`` on ``data`` and log everything ``embsel evaluate`` logs into ``run``.

    The one code path for a (model, dataset) pair: ``evaluate`` calls it once, ``select`` once
    per child run, so a child logs exactly what a plain evaluate run logs.
    """
    from embsel_mlflow.families import build_task
    from embsel_mlflow.models.cache import cache_counts, cache_metrics, cached_layer, open_cache
    from embsel_mlflow.models.identity import display_name
    from embsel_mlflow.models.memory import release_memory_before_encoding
    from embsel_mlflow.models.variants import variant_tags
    from embsel_mlflow.profiling.link import link_profile
    from embsel_mlflow.profiling.modality import refuse_modality_mismatch
    from embsel_mlflow.tracking.model_entity import link_logged_model
    from embsel_mlflow.tracking.results import efficiency_metrics, log_result
    from embsel_mlflow.tracking.system_tags import hardware_tags

    run.set_tags({"embsel.task": str(job.data.task)})
    # the candidate's kind must embed the task's modalities; no text model on image paths
    refuse_modality_mismatch(
        data, job.profile, root=job.data.root, model=job.model, context=guard_context(job)
    )
    scored = (data.split, f"qrels/{data.split}")  # the table the scores come from (retrieval: its qrels)
    # that table first: the runs table's Dataset column shows the first input
    tables = sorted(data.tables, key=lambda table: table.role not in scored)
    datasets = run.log_datasets(tables, dataset_name=data.name, log_inputs=job.tracking.log_datasets)
    # the data's profile, found by these digests or computed now: embsel.profile.run_id on the run
    link_profile(run, tables, datasets, name=data.name, task=str(job.data.task), eval_split=data.split,
                 cfg=job.profile, root=job.data.root)  # fmt: skip
    identity = encoder.identity
    model_id = link_logged_model(run, identity)
    run.set_tags(
        {
            "embsel.model_source": encoder.source.path_or_id,
            "embsel.model_origin": encoder.source.origin,
            "embsel.model_sha256": encoder.source.sha256,
            **variant_tags(identity),
        }
    )
    if cached_layer(encoder) is None:  # a cached one releases before its first miss: a warm run skips it
        release_memory_before_encoding()  # the peak is reached while encoding: start it from the floor
    started = time.perf_counter()
    cached_before = cache_counts(encoder)
    result = build_task(data, job.evaluation).evaluate(encoder)
    # after encoding: a lazily built model is on its device only if some text was not cached
    run.set_tags(hardware_tags(encoder.device))
    efficiency = efficiency_metrics(
        result, embedding_dim=encoder.embedding_dim, num_parameters=encoder.num_parameters
    )
    efficiency = in_encoded_unit(efficiency, data)
    efficiency.update(cache_metrics(encoder, cached_before))  # cache_hits / cache_misses (texts)
    efficiency["eval_seconds"] = time.perf_counter() - started
    log_result(
        run,
        result,
        efficiency=efficiency,
        log_per_item=job.tracking.log_per_item,
        model_name=display_name(identity),
        model_id=model_id,
        dataset=next((datasets[role] for role in scored if role in datasets), None),
        plots_dir=cache.plots_dir if (cache := open_cache(job.cache)) is not None else None,
    )
    return result


# What a family that embeds one media modality encodes, in metric names (texts keep texts_*).
_ENCODED_UNITS = {"image": "images", "audio": "audio_clips"}


def in_encoded_unit(efficiency: dict[str, float], data: TaskData) -> dict[str, float]:
    """``texts_encoded`` / ``texts_per_second`` named for what was encoded: ``images_*`` or
    ``audio_clips_*`` for a family that embeds only that, ``items_*`` for one that mixes texts and
    media (e.g. image-text retrieval); unchanged for texts."""
    from embsel_mlflow.families import family_of

    modalities = set(family_of(data).modalities)
    if modalities == {"text"}:
        return efficiency
    only = next(iter(modalities)) if len(modalities) == 1 else "mixed"
    unit = _ENCODED_UNITS.get(only, "items")
    renamed = {"texts_encoded": f"{unit}_encoded", "texts_per_second": f"{unit}_per_second"}
    return {renamed.get(key, key): value for key, value in efficiency.items()}


def evaluate_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Compose -> load data -> load model -> evaluate, logging each stage as soon as it is known."""
    from functools import partial

    from omegaconf import OmegaConf

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.run import job_run
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.models.variants import is_default
    from embsel_mlflow.profiling.modality import refuse_modality_mismatch
    from embsel_mlflow.sweeps import reuse
    from embsel_mlflow.tracking.experiment_ui import ui_hint
    from embsel_mlflow.tracking.run_naming import job_run_name, run_name
    from embsel_mlflow.tracking.store import resolve_tracking_uri

    model_name = OmegaConf.select(cfg, "model.name", default="model", throw_on_missing=False)
    data_name = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    name = tracking.run_name or job_run_name(cfg)
    tags = {"embsel.model": model_name, "embsel.dataset": data_name}
    settings: dict[str, Any] = {"run_name": name, "tags": tags, "experiment_ui": True, "job_log": True}
    rename = partial(_name_attached_run, name=name, user_set=bool(tracking.run_name))
    with job_run(STEP, cfg, tracking, overrides, EvaluateJobConfig, on_open=rename, **settings) as (run, job):
        log.info("loading data '%s' (%s)", job.data.name, job.data.task)
        # In a sweep, a model or dataset an earlier job of this process loaded is reused.
        data = reuse.shared("data", job.data, lambda: load_task_data(job.data))
        # before the model loads: a text model on images is refused offline too, with the kinds that fit
        refuse_modality_mismatch(
            data, job.profile, root=job.data.root, model=job.model, context=guard_context(job)
        )
        log.info("loading model '%s' (%s)", job.model.name, job.model.name_or_path)
        # a variant calibrated on this dataset's train split is not reused for another dataset
        calibrated_on = None if is_default(job.model) else job.data
        model = reuse.shared(
            "model",
            (job.model, job.cache, calibrated_on),
            lambda: build_encoder(
                job.model,
                cache=open_cache(job.cache),
                calibration_data=[job.data],
                tracking_uri=job.tracking.uri,  # where a from_run model's run is
            ),
        )
        encoder = model.for_dataset(data)
        if not tracking.run_name:  # the loaded model's identity names it (a from_run model's base)
            _rename(run, name, run_name(encoder.identity, data.name))
        result = evaluate_in_run(run, job, data, encoder)
        run_id, experiment_id = run.run_id, run.experiment_id

    print(
        f"{job.model.name} on {data.name} [{data.split}]: {result.main_score_name} = {result.main_score:.5f}"
        f"  (run {run_id})"
    )
    print(ui_hint(resolve_tracking_uri(tracking.uri), experiment_id))
    return result.main_score


def _rename(run: RunLogger, planned: str, name: str) -> None:
    """Name the run after the model it really loaded, where that differs from the config's name;
    a sweep child keeps its job context (``#3 <model>@<dataset> ...``)."""
    if name != planned:
        current = run.client.get_run(run.run_id).info.run_name or ""
        run.client.update_run(run.run_id, name=current.replace(planned, name) if planned in current else name)


def _name_attached_run(run: RunLogger, name: str, *, user_set: bool) -> None:
    """Give a run that ``mlflow run`` created under a made-up name the model@dataset name."""
    from embsel_mlflow.tracking.run_naming import is_generated_name

    current = run.client.get_run(run.run_id).info.run_name
    if current != name and (user_set or is_generated_name(current)):
        run.client.update_run(run.run_id, name=name)
