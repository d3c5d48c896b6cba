"""``embsel train``'s job: fine-tune one model on a dataset's train split, as one MLflow run.

The run holds the zero-shot baseline and the tuned model, both scored on the test split by
the evaluator ``evaluate`` uses, the delta with its paired-bootstrap CI and p-value, the
training curve (one logger; transformers' MLflowCallback stays off), checkpoints that survive
SIGINT/SIGTERM (``train.resume=<run id>`` continues them in the same run), and the tuned model
as an MLflow pyfunc model. Returns the validation main score (the Optuna objective).

Image–text data (``image_to_text_retrieval``, ``text_to_image_retrieval``: (image, caption) pairs)
trains a dual encoder (``model.kind=clip``) with its own contrastive loss instead
(``training/contrastive.py``); the run holds the same baseline, tuned score, delta, curve and model,
but no checkpoints (a signal ends it KILLED; there is nothing to resume).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import TrackingConfig, TrainJobConfig
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.jobs.app import app_output_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "train"
OUTPUT_DIR_TAG = "embsel.train.output_dir"
PAIRS_TAG = "embsel.train.pairs"  # the kind of pairs the run trained on (training/pairs.py)
log = logging.getLogger("embsel.train")


def train_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Compose -> check -> baseline -> train -> tuned test score, delta, model; all in one run."""
    from functools import partial

    from omegaconf import OmegaConf

    from embsel_mlflow.jobs.run import job_run
    from embsel_mlflow.tracking.run_naming import job_run_name

    resume = OmegaConf.select(cfg, "train.resume", default=None)
    if resume:
        check_resumable(tracking, str(resume), overrides)
    model_path = OmegaConf.select(cfg, "model.name_or_path", default="model", throw_on_missing=False)
    data_name = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    name = tracking.run_name or job_run_name(cfg, context=STEP)
    with job_run(
        STEP,
        cfg,
        tracking,
        overrides,
        TrainJobConfig,
        run_name=name,
        tags={"embsel.model": str(model_path), "embsel.dataset": str(data_name)},
        reopen_run_id=resume or None,
        log_config=partial(_log_config, resuming=bool(resume)),
        experiment_ui=True,
    ) as (run, job):
        outcome = train_in_run(run, job, resuming=bool(resume))
        run_id = run.run_id
    print(f"(train run {run_id})")
    return outcome.objective


def _log_config(run: RunLogger, cfg: Any, overrides: list[str], *, resuming: bool) -> None:
    """The config as params; a resumed run must keep its config (a param cannot change value)."""
    from omegaconf import OmegaConf

    from embsel_mlflow.tracking.config_logging import log_config, readable_config
    from embsel_mlflow.tracking.params import config_to_params

    if not resuming:
        log_config(run, cfg, overrides)
        return
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    params, _ = config_to_params(readable_config(resolved))  # type: ignore[arg-type]
    logged = run.client.get_run(run.run_id).data.params
    changed = [key for key, value in params.items() if key in logged and logged[key] != value]
    if changed:
        key = changed[0]
        raise ConfigError(
            f"train.resume continues a run with its own config, but {key}={params[key]} differs from the "
            f"run's {key}={logged[key]}; resume with the run's overrides (plus train.resume=...)"
        )
    run.log_params({key: value for key, value in params.items() if key not in logged})


def check_resumable(tracking: TrackingConfig, run_id: str, overrides: list[str]) -> None:
    """A resume id must name an ended ``train`` run of this store with a checkpoint; else a FAILED
    run (a new one: the named run is not touched) and one line."""
    from embsel_mlflow.tracking.repair import close_if_orphaned
    from embsel_mlflow.tracking.run import record_failed_run
    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri
    from embsel_mlflow.training.pairs import MEDIA_TEXT
    from embsel_mlflow.training.trainer import last_checkpoint

    client = open_store(resolve_tracking_uri(tracking.uri))
    problem = None
    try:
        found = client.get_run(run_id)
    except Exception:
        problem = f"train.resume={run_id} names no run in this tracking store; pass the id of a train run"
    else:
        tags = found.data.tags
        if tags.get("embsel.entry_point") != STEP:
            what = tags.get("embsel.entry_point") or "non-embsel"
            problem = f"train.resume={run_id} names a {what} run, not a train run; pass the id of a train run"
        elif found.info.status == "RUNNING" and not close_if_orphaned(client, found):  # SIGKILLed: repaired
            problem = f"train.resume={run_id} names a RUNNING run; stop it first (or wait for it to end)"
        elif found.info.status == "FINISHED":
            problem = f"train.resume={run_id} names a FINISHED train run; there is nothing to resume"
        elif tags.get(PAIRS_TAG) == MEDIA_TEXT:
            problem = (
                f"train.resume={run_id} names an image–text (contrastive) train run, which keeps no "
                "checkpoint; start a new run"
            )
        elif last_checkpoint(Path(tags.get(OUTPUT_DIR_TAG, "/nonexistent"))) is None:
            problem = (
                f"train.resume={run_id}: no checkpoint under {tags.get(OUTPUT_DIR_TAG)} (it stopped before "
                "its first checkpoint, or the folder was moved); start a new run"
            )
    if problem:
        record_failed_run(
            tracking,
            entry_point=STEP,
            reason=problem,
            run_name=f"{STEP} (invalid resume)",
            overrides=overrides,
        )
        raise ConfigError(problem)


@dataclass
class TrainResult:
    objective: float  # the validation main score of the final model
    baseline: TaskResult  # the base model on the test split
    result: TaskResult  # the tuned model on the test split
    encoder: Any  # the tuned model (a TunedEncoder), in memory


def train_in_run(run: RunLogger, job: TrainJobConfig, *, resuming: bool = False) -> TrainResult:
    """Check, baseline, train, score and log the tuned model into ``run`` (the library call of ``train``)."""
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.families import build_task, load_task_data
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.training.checks import check_batches, check_sampler_name
    from embsel_mlflow.training.hard_negatives import add_hard_negatives
    from embsel_mlflow.training.losses import check_loss_fits, loss_spec
    from embsel_mlflow.training.pairs import MEDIA_TEXT, build_pairs, check_text_pairs, hold_out

    train_cfg = job.train
    loss_spec(train_cfg.loss.name)  # an unknown loss fails before any data or model is loaded
    check_sampler_name(train_cfg.batch_sampler)

    log.info("loading data '%s' (%s)", job.data.name, job.data.task)
    train_data = load_task_data(job.data, split=job.data.train_split)
    test_data = load_task_data(job.data)
    if train_cfg.validation_split:
        validation = load_task_data(job.data, split=train_cfg.validation_split)
    else:
        train_data, validation = hold_out(train_data, train_cfg.validation_fraction, train_cfg.seed)
    pairs = build_pairs(train_data, pairs_per_class=train_cfg.pairs_per_class, seed=train_cfg.seed)
    if train_cfg.max_pairs is not None:
        pairs = pairs.head(train_cfg.max_pairs)
    if pairs.kind == MEDIA_TEXT:  # (image, caption) pairs: a dual encoder, trained contrastively
        return _train_image_text(run, job, train_data, test_data, validation, pairs, resuming=resuming)
    check_text_pairs(pairs)
    check_loss_fits(train_cfg.loss, pairs)
    check_batches(pairs, train_cfg.batch_size, train_cfg.batch_sampler)
    run.set_tags({"embsel.task": str(job.data.task), PAIRS_TAG: pairs.kind.value})
    if not resuming:  # a resumed run has them (a metric logged twice would repeat its step)
        _log_training_data(run, job, train_data, test_data, validation, len(pairs))

    log.info("loading model '%s' (%s)", job.model.name, job.model.name_or_path)
    encoder = build_encoder(job.model, cache=open_cache(job.cache), tracking_uri=job.tracking.uri)
    base = _trainable(encoder, job.model.name)

    # Baseline: the same evaluator as `evaluate`, on the same test split (cached embeddings are exact).
    baseline = build_task(test_data, job.evaluation).evaluate(encoder)
    if not resuming:
        run.log_metrics(_prefixed("baseline", baseline))
    print(
        f"baseline {job.model.name} on {test_data.name} [{test_data.split}]: "
        f"{baseline.main_score_name} = {baseline.main_score:.5f}"
    )

    if train_cfg.hard_negatives.enabled:  # mined with the base weights, through the cache evaluate fills
        pairs = add_hard_negatives(pairs, encoder, train_data, train_cfg.hard_negatives)
        if not resuming:
            run.log_metrics({"train/pairs_with_negatives": float(len(pairs))})
    tuned, outcome, evaluator = _fit(run, job, base, pairs, validation, resuming=resuming)
    tuned_encoder = _tuned(base, run.run_id, outcome)

    def objective() -> float:
        return _validation_score(run, outcome, evaluator, tuned)

    return _score_tuned(run, job, test_data, baseline, tuned_encoder, objective)


def _log_training_data(
    run: RunLogger,
    job: TrainJobConfig,
    train_data: TaskData,
    test_data: TaskData,
    validation: TaskData,
    pairs: int,
) -> None:
    """The train split's tables as the run's inputs; the pair and validation item counts."""
    from embsel_mlflow.families import family_of

    train_tables = [
        t for t in train_data.tables if t.role not in (test_data.split, f"qrels/{test_data.split}")
    ]
    run.log_datasets(train_tables, dataset_name=job.data.name, log_inputs=job.tracking.log_datasets)
    run.log_metrics(
        {
            "train/pairs": float(pairs),
            "validation/items": float(family_of(validation).item_count(validation.examples)),
        }
    )


def _trainable(encoder: Any, name: str) -> Any:
    """The transformer encoder behind the cache; other kinds cannot be fine-tuned."""
    from embsel_mlflow.models.encoder import Encoder

    inner = getattr(encoder, "inner", encoder)
    if not isinstance(inner, Encoder):
        raise ConfigError(
            f"model '{name}' ({type(inner).__name__}) cannot be fine-tuned on text pairs: train takes "
            "transformer candidates (model.kind sentence_transformers or transformers), e.g. model=minilm; "
            "a dual encoder (model.kind=clip) trains on image_to_text_retrieval or text_to_image_retrieval "
            "data"
        )
    return inner


def _train_image_text(
    run: RunLogger,
    job: TrainJobConfig,
    train_data: TaskData,
    test_data: TaskData,
    validation: TaskData,
    pairs: Any,
    *,
    resuming: bool,
) -> TrainResult:
    """A dual encoder (model.kind=clip) fine-tuned on (image, caption) pairs with its own contrastive
    loss (``training/contrastive.py``); baseline, tuned score, delta and model as for text models.

    No checkpoints: a signal ends the run KILLED at the step it reached (nothing to resume).
    """
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.families import build_task
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.training.contrastive import check_pair_batches, pairs_from_columns

    cfg = job.train
    _check_contrastive_settings(job, resuming=resuming)
    image_text = pairs_from_columns(pairs.columns, pairs.source)
    check_pair_batches(image_text, cfg.batch_size, cfg.batch_sampler)
    run.set_tags({"embsel.task": str(job.data.task), PAIRS_TAG: str(pairs.kind)})
    _log_training_data(run, job, train_data, test_data, validation, len(image_text))

    log.info("loading model '%s' (%s)", job.model.name, job.model.name_or_path)
    encoder = build_encoder(job.model, cache=open_cache(job.cache), tracking_uri=job.tracking.uri)
    base = _dual_encoder(encoder, job.model.name)

    baseline = build_task(test_data, job.evaluation).evaluate(encoder)
    run.log_metrics(_prefixed("baseline", baseline))
    print(
        f"baseline {job.model.name} on {test_data.name} [{test_data.split}]: "
        f"{baseline.main_score_name} = {baseline.main_score:.5f}"
    )
    scorer = _ValidationScorer(validation, job)
    outcome = _fit_contrastive(run, job, base, image_text, scorer)
    tuned_encoder = _tuned_dual_encoder(base, run.run_id, outcome.global_step)

    return _score_tuned(
        run, job, test_data, baseline, tuned_encoder, lambda: _validation_score(run, outcome, scorer, base)
    )


def _score_tuned(
    run: RunLogger,
    job: TrainJobConfig,
    test_data: TaskData,
    baseline: TaskResult,
    tuned_encoder: Any,
    objective: Callable[[], float],
) -> TrainResult:
    """Score the tuned model as evaluate does, log the delta and the model once, print the line."""
    from embsel_mlflow.jobs.evaluate import evaluate_in_run, scoring_job

    result = evaluate_in_run(run, scoring_job(job, model=job.model, data=job.data), test_data, tuned_encoder)
    _log_delta(run, job, baseline, result, tuned_encoder)
    score = objective()
    _log_model(run, job, tuned_encoder)
    print(
        f"tuned {job.model.name} on {test_data.name} [{test_data.split}]: {result.main_score_name} = "
        f"{result.main_score:.5f} (baseline {baseline.main_score:.5f}, "
        f"delta {result.main_score - baseline.main_score:+.5f})"
    )
    return TrainResult(score, baseline, result, tuned_encoder)


def _check_contrastive_settings(job: TrainJobConfig, *, resuming: bool) -> None:
    """``train.*`` settings that contrastive training has no use for are refused, not ignored."""
    cfg = job.train
    where = f"{job.data.name} ({job.data.task}) trains a dual encoder with its own contrastive loss"
    if resuming:
        raise ConfigError(f"train.resume: {where} and writes no checkpoints; start a new run")
    if cfg.loss.name != "mnrl" or cfg.loss.matryoshka_dims:  # mnrl, the default, is InfoNCE as CLIP's
        raise ConfigError(
            f"{where} (CLIP: InfoNCE, SigLIP: sigmoid): drop train/loss={cfg.loss.name} and "
            "train.loss.matryoshka_dims"
        )
    if cfg.hard_negatives.enabled:
        raise ConfigError(f"{where}, with in-batch negatives only: set train.hard_negatives.enabled=false")
    if cfg.early_stopping_patience is not None:
        raise ConfigError(
            f"{where} and keeps no checkpoints to go back to: drop train.early_stopping_patience "
            "(set train.max_steps or train.epochs instead)"
        )


def _dual_encoder(encoder: Any, name: str) -> Any:
    """The image–text model behind the cache (its ``model`` and ``processor``), in fp32 weights."""
    from embsel_mlflow.training.contrastive import check_trainable

    inner = getattr(encoder, "inner", encoder)
    if not (hasattr(inner, "model") and hasattr(inner, "processor")):
        raise ConfigError(
            f"model '{name}' ({type(inner).__name__}) cannot be trained on image–text pairs: train a "
            "dual encoder (model.kind=clip, e.g. model=clip_vit_b32)"
        )
    check_trainable(inner.model)
    dtype = str(next(inner.model.parameters()).dtype)
    if dtype != "torch.float32":
        raise ConfigError(
            f"model '{name}' is loaded in {dtype.removeprefix('torch.')} weights, which AdamW cannot train: "
            "set model.precision=fp32 (train.precision=bf16 trains in mixed precision)"
        )
    return inner


class _ValidationScorer:
    """The validation split scored by the task's evaluator, on the model as it is now (no cache)."""

    def __init__(self, validation: TaskData, job: TrainJobConfig) -> None:
        import dataclasses

        from embsel_mlflow.families import build_task

        self.task = build_task(validation, dataclasses.replace(job.evaluation, show_progress=False))

    def score(self, model: Any) -> TaskResult:
        return self.task.evaluate(model)


def _fit_contrastive(
    run: RunLogger, job: TrainJobConfig, base: Any, pairs: Any, scorer: _ValidationScorer
) -> Any:
    """Train ``base.model`` in place; the ContrastiveOutcome. A signal ends the run KILLED."""
    from embsel_mlflow.tracking.run import RunTerminated
    from embsel_mlflow.training.contrastive import is_sigmoid_model, train_contrastive

    cfg = job.train
    model = base.model
    loss = "siglip_sigmoid" if is_sigmoid_model(model) else "clip_infonce"
    _log_training_arguments(
        run,
        {
            "trainer": "contrastive",
            "loss": loss,
            "model_class": type(model).__name__,
            "max_length": base.max_seq_length,
            **{key: getattr(cfg, key) for key in CONTRASTIVE_KEYS},
        },
    )

    def validate() -> tuple[float, dict[str, float]]:
        result = scorer.score(base)
        return result.main_score, dict(result.scores)

    monitor = _system_metrics(run, job, resuming=False)
    try:
        outcome = train_contrastive(
            model, base.processor, pairs, cfg, sink=run, validate=validate, max_length=base.max_seq_length
        )
    finally:
        if monitor is not None:
            monitor.finish()
    if outcome.stopped_by is not None:
        log.info("stopped at step %d (contrastive training keeps no checkpoint)", outcome.global_step)
        if outcome.stopped_by == signal.SIGINT:
            raise KeyboardInterrupt
        raise RunTerminated(outcome.stopped_by)
    return outcome


# The train.* keys contrastive training reads (logged as train_args.*, as the Trainer's arguments are).
CONTRASTIVE_KEYS = (
    "batch_size",
    "batch_sampler",
    "learning_rate",
    "epochs",
    "max_steps",
    "warmup_ratio",
    "weight_decay",
    "gradient_accumulation_steps",
    "seed",
    "precision",
    "logging_steps",
    "eval_steps",
)


def _tuned_dual_encoder(base: Any, run_id: str, step: int) -> Any:
    from embsel_mlflow.training.tuned_clip import TunedClipModel

    return TunedClipModel(base, run_id, step, _tuned_source(base, run_id))


def _prefixed(prefix: str, result: TaskResult) -> dict[str, float]:
    metrics = {f"{prefix}/{result.split}/{name}": float(value) for name, value in result.scores.items()}
    metrics[f"{prefix}/{result.split}/main_score"] = float(result.main_score)
    return metrics


def _output_dir(run: RunLogger, job: TrainJobConfig, *, resuming: bool) -> Path:
    """Checkpoints: the resumed run's folder, ``train.output_dir/<run id>``, or the Hydra run dir's."""
    if resuming:
        return Path(run.client.get_run(run.run_id).data.tags[OUTPUT_DIR_TAG])
    if job.train.output_dir:
        return Path(job.train.output_dir).resolve() / run.run_id
    app_dir = app_output_dir()
    return app_dir / "checkpoints" if app_dir else Path("outputs", STEP, run.run_id).resolve()


def _log_training_arguments(run: RunLogger, arguments: dict[str, Any]) -> None:
    """Every training argument as a ``train_args.*`` param (a resumed run logs only new ones)."""
    from embsel_mlflow.tracking.params import config_to_params

    set_args = {key: value for key, value in arguments.items() if value is not None and value != ""}
    params, _ = config_to_params({"train_args": set_args})
    logged = run.client.get_run(run.run_id).data.params
    run.log_params({key: value for key, value in params.items() if key not in logged})


def _fit(
    run: RunLogger,
    job: TrainJobConfig,
    base: Any,
    pairs: Any,
    validation: TaskData,
    *,
    resuming: bool,
) -> tuple[Any, Any, Any]:
    """Train ``base``'s model in place; (model, TrainingOutcome, validation evaluator).

    A signal stops training at a checkpoint and ends the run KILLED.
    """
    from embsel_mlflow.tracking.run import RunTerminated
    from embsel_mlflow.training.evaluator import TaskEvaluator
    from embsel_mlflow.training.losses import build_loss
    from embsel_mlflow.training.trainer import fine_tune, last_checkpoint, training_arguments

    cfg = job.train
    model = base.model
    evaluator = TaskEvaluator(validation, job.evaluation, job.model, base.source)
    output_dir = _output_dir(run, job, resuming=resuming)
    run.set_tags({OUTPUT_DIR_TAG: str(output_dir)})
    args = training_arguments(cfg, output_dir, device=base.device, main_metric=evaluator.primary_metric)
    _log_training_arguments(run, args.to_dict())
    loss = build_loss(model, cfg.loss, pairs)
    resume_from = last_checkpoint(output_dir) if resuming else None
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    monitor = _system_metrics(run, job, resuming=resuming)
    try:
        outcome = fine_tune(
            model, pairs, loss, args, cfg, evaluator=evaluator, sink=run, resume_from=resume_from
        )
    finally:
        if monitor is not None:
            monitor.finish()
    if outcome.stopped_by is not None:
        log.info("stopped at step %d; checkpoint saved in %s", outcome.global_step, output_dir)
        if outcome.stopped_by == signal.SIGINT:
            raise KeyboardInterrupt
        raise RunTerminated(outcome.stopped_by)
    return model, outcome, evaluator


def _system_metrics(run: RunLogger, job: TrainJobConfig, *, resuming: bool) -> Any:
    """MLflow's system metrics monitor on this run (CPU, memory, disk, GPU), or None when off."""
    if not job.train.system_metrics:
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run.run_id,
        sampling_interval=job.train.system_metrics_interval_s,
        resume_logging=resuming,
        tracking_uri=run.client._tracking_client.tracking_uri,
    )
    monitor.start()
    return monitor


def _tuned(base: Any, run_id: str, outcome: Any) -> Any:
    from embsel_mlflow.training.tuned import TunedEncoder

    return TunedEncoder(base, run_id, outcome.global_step, _tuned_source(base, run_id))


def _tuned_source(base: Any, run_id: str) -> Any:
    """Where the tuned weights are logged (``runs:/<id>/model``) and their own sha256: the
    identity of a fine-tuned model is never its base's."""
    from embsel_mlflow.models.resolve import ResolvedModel
    from embsel_mlflow.tracking.embedding_model import weights_sha256

    digest = weights_sha256(base, base.config.name)  # ``base`` holds the tuned weights now
    return ResolvedModel(f"runs:/{run_id}/{MODEL_PATH}", FINE_TUNED, digest)


FINE_TUNED = "fine_tuned"  # the origin of a model this run trained (embsel.model_origin)


def _log_delta(
    run: RunLogger, job: TrainJobConfig, baseline: TaskResult, tuned: TaskResult, model: Any
) -> None:
    """``test/main_score``, ``delta/test/main_score`` and, from the paired bootstrap that ``select``
    uses on the per-item scores, its 95% interval and p-value; the description says them too."""
    from embsel_mlflow.models.identity import display_name
    from embsel_mlflow.selection.statistics import (
        bootstrap_scores,
        confidence_interval,
        paired_p_value,
        resample_indices,
    )
    from embsel_mlflow.tracking.descriptions import NOTE_TAG, delta_description

    split = tuned.split
    delta = tuned.main_score - baseline.main_score
    metrics = {f"{split}/main_score": tuned.main_score, f"delta/{split}/main_score": delta}
    ci = p_value = None
    if tuned.per_item is not None and baseline.per_item is not None and len(tuned.per_item) > 1:
        indices = resample_indices(len(tuned.per_item), RESAMPLES, job.evaluation.seed)
        differences = bootstrap_scores(tuned, indices) - bootstrap_scores(baseline, indices)
        ci = confidence_interval(differences, CONFIDENCE)
        p_value = paired_p_value(delta, differences)
        metrics.update(
            {
                f"delta/{split}/main_score_ci_low": ci[0],
                f"delta/{split}/main_score_ci_high": ci[1],
                f"delta/{split}/p_value": p_value,
            }
        )
    run.log_metrics(metrics)
    description = delta_description(tuned, baseline, display_name(model.identity), ci=ci, p_value=p_value)
    run.set_tags({NOTE_TAG: description})


RESAMPLES = 1000  # as select's default (conf/select/default.yaml)
CONFIDENCE = 0.95


def _validation_score(run: RunLogger, outcome: Any, evaluator: Any, model: Any) -> float:
    """The validation main score of the final model (the objective an Optuna sweep maximises)."""
    if outcome.validation_step == outcome.global_step and outcome.validation_score is not None:
        return float(outcome.validation_score)
    result = evaluator.score(model)
    metrics = {f"validation/{name}": value for name, value in result.scores.items()}
    metrics["validation/main_score"] = result.main_score
    run.log_metric_steps([(key, value, outcome.global_step) for key, value in metrics.items()])
    return float(result.main_score)


def _log_model(run: RunLogger, job: TrainJobConfig, encoder: Any) -> None:
    """The tuned model as an MLflow pyfunc model (``runs:/<id>/model``); registered on request."""
    from embsel_mlflow.tracking.embedding_model import log_embedding_model

    if not job.train.log_model and not job.train.register:
        return
    logged = log_embedding_model(
        run.client,
        run.run_id,
        encoder,
        job.model.name,
        artifact_path=MODEL_PATH,
        cfg=job.model,
        register=job.train.register,
        tags={"embsel.source_run": run.run_id, "embsel.base_model": job.model.name},
    )
    run.set_tags({"embsel.model_uri": logged.uri})
    print(f"model: {logged.uri}")
    if logged.registered_uri:
        run.set_tags({"embsel.registered_model": logged.registered_uri})
        print(f"registered as {logged.registered_uri}")


MODEL_PATH = "model"
