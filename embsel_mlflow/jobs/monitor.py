"""What ``embsel monitor`` runs inside its MLflow runs: the parent, one child per window, the logging.

Structure in MLflow: one parent run per monitored model and reference (found again by its
``embsel.monitor.key`` tag and reopened on every invocation, so the time series continue),
one child run per window. The parent holds the time series (step = window index, timestamp =
the window's time), the latest verdict as tags and the plots; a child holds its window's
metrics, tags ``drift.<method>=true|false``, the quality evaluation (what ``evaluate`` logs)
and the most shifted texts. A window already monitored (same content digest) is skipped.

Windows hold what the reference's task family embeds: texts, or images / audio clips (paths
relative to data.root, checked as the data loader checks them). A model fitted per dataset
(LSA, the image and audio feature baselines) is fitted once on the reference data, and every
window and quality check is embedded by that same fitted model; a registered fit
(``model_uri=models:/NAME@champion``) is used as registered, never refitted.

The monitoring library (``embsel_mlflow.monitoring``) plans the windows and computes each
window's report; this module opens the runs, hands the library the model and the scorers
(which log to MLflow) and logs each report once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import MonitorJobConfig, TrackingConfig
from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.media.items import TEXT

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.monitoring.plan import ReferenceSample, Seen
    from embsel_mlflow.monitoring.runner import Baseline, Reference, Score, WindowReport
    from embsel_mlflow.monitoring.windows import Window
    from embsel_mlflow.text.tokens import CandidateTokenizer
    from embsel_mlflow.tracking.registered_model import RegisteredModel
    from embsel_mlflow.tracking.run_logger import RunLogger

STEP = "monitor"
log = logging.getLogger("embsel.monitor")

KEY_TAG = "embsel.monitor.key"  # the monitored model + reference: finds the parent run again
ROLE_TAG = "embsel.monitor.role"  # parent | window | baseline
DIGEST_TAG = "embsel.monitor.window_digest"
STEP_TAG = "embsel.monitor.step"
STATUS_TAG = "embsel.monitor.status"
BASELINE_TAG = "embsel.monitor.baseline"
BASELINE_METRIC_TAG = "embsel.monitor.baseline_metric"
PARENT, WINDOW, BASELINE = "parent", "window", "baseline"


def run_monitor(args: list[str]) -> int:
    """``embsel monitor <args>``: 0 all well, ``monitor.drift_exit_code`` on an alert, 2 bad input."""
    from embsel_mlflow.jobs.app import run_app

    outcome: dict[str, int] = {}  # monitor.drift_exit_code of the last job that raised an alert

    def job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
        alerts = monitor_job(cfg, tracking, overrides)
        if alerts:  # the job ran, so its config is valid
            outcome["exit_code"] = int(cfg.monitor.drift_exit_code)
        return alerts

    code = run_app(STEP, job, args, check_options=True)
    return outcome.get("exit_code", 0) if code == 0 else code


def monitor_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Open (or reopen) the parent run, monitor every new window, log; returns the number of alerts."""
    from functools import partial

    from omegaconf import OmegaConf

    from embsel_mlflow.jobs.run import job_run
    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri

    key = monitor_key(cfg)
    client = open_store(resolve_tracking_uri(tracking.uri))
    reopen = None if os.environ.get("MLFLOW_RUN_ID") else find_parent(client, tracking.experiment, key)
    model_label = OmegaConf.select(cfg, "model_uri", default=None) or OmegaConf.select(
        cfg, "model.name", default="model", throw_on_missing=False
    )
    data_name = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # A reopened parent's params are set and immutable: this invocation's config as files only.
    logger = partial(log_config, artifact_dir=f"invocations/{stamp}/", with_params=False) if reopen else None
    with (
        tempfile.TemporaryDirectory(prefix="embsel-monitor-") as tmp,
        job_run(
            STEP,
            cfg,
            tracking,
            overrides,
            MonitorJobConfig,
            run_name=tracking.run_name or f"monitor {model_label} on {data_name}",
            tags={KEY_TAG: key, ROLE_TAG: PARENT, "embsel.model": model_label, "embsel.dataset": data_name},
            reopen_run_id=reopen,
            log_config=logger,
        ) as (parent, job),
    ):
        statuses = _monitor(job, parent, key, Path(tmp))
        parent_id = parent.run_id
    alerts = sum(status != "ok" for status in statuses)
    verdict = f"{alerts} of {len(statuses)} window(s) alerted" if alerts else f"{len(statuses)} window(s) ok"
    print(f"monitor: {verdict} (parent run {parent_id})")
    return float(alerts)


@dataclass
class Session:
    """What every window of one invocation shares (the job's state, not the library's)."""

    job: MonitorJobConfig
    parent: RunLogger
    key: str
    encoder: EmbeddingModel
    tokenizer: CandidateTokenizer | None
    registered: RegisteredModel | None
    baseline: Baseline | None = None  # found once, when the first labelled window asks


def _monitor(job: MonitorJobConfig, parent: RunLogger, key: str, tmp: Path) -> list[str]:
    """Plan every window, skip what is known, load the model and reference once, log each report."""
    from embsel_mlflow.models.cache import cache_dir
    from embsel_mlflow.monitoring.plan import plan_windows
    from embsel_mlflow.monitoring.runner import summary_line
    from embsel_mlflow.monitoring.windows import data_windows, file_windows
    from embsel_mlflow.profiling.modality import refuse_media_tables

    judged_dir = cache_dir(job.cache) / "judged-queries"  # where judged retrieval windows' qrels go
    windows = [*file_windows(job.current, job.data, judged_dir), *data_windows(job.windows, job.data)]
    for window in windows:  # before any model is loaded: bad input costs nothing
        refuse_media_tables(
            [window.table], window.name, job.profile, root=job.current.root, task=job.data.task
        )
    plan = plan_windows(windows, previous_windows(parent.client, parent.experiment_id, key))
    statuses: list[str] = []
    for known in plan.seen:  # monitored by an earlier invocation: its verdict counts again
        assert known.seen is not None
        print(known.skip_line())
        statuses.append(known.seen.status)
    if not plan.new:
        return statuses  # nothing new: no model or reference to load
    data, sample = _reference_sample(job)  # the reference data before the model: bad input costs nothing
    encoder, registered = _load_model(job, parent, tmp, data)
    # the text signals (token lengths, languages) are for texts: none for image or audio windows
    tokenizer = _tokenizer(job) if job.monitor.text.enabled and sample.modality == TEXT else None
    session = Session(job, parent, key, encoder, tokenizer, registered)
    reference = _reference(session, sample)
    new: list[tuple[Window, WindowReport]] = []
    for planned in plan.todo:
        if planned.step is None:  # a duplicate of an earlier window of this invocation
            print(planned.skip_line())
            continue
        report = _monitor_window(session, reference, planned.window, planned.step)
        print(summary_line(report, planned.step))
        statuses.append(report.status)
        new.append((planned.window, report))
    _log_parent_artifacts(session, reference, new)
    return statuses


def monitor_key(cfg: Any) -> str:
    """The monitored model and reference, from the composed config (model, data, reference options)."""
    from omegaconf import OmegaConf

    parts = []
    for key in ("model_uri", "model", "data", "monitor.reference_split", "monitor.reference_embeddings"):
        node = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        try:
            text = OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node) else repr(node)
        except Exception:  # an interpolation that fails: the config check reports it
            text = OmegaConf.to_yaml(node) if OmegaConf.is_config(node) else repr(node)
        parts.append(f"{key}={text}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def find_parent(client: MlflowClient, experiment: str, key: str) -> str | None:
    """The parent run of this monitored model in ``experiment``, if one exists."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = '{PARENT}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def previous_windows(client: MlflowClient, experiment_id: str, key: str) -> dict[str, Seen]:
    """digest -> (run id, step, status) of the windows already monitored for ``key`` (FINISHED runs)."""
    from embsel_mlflow.monitoring.plan import Seen

    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = '{WINDOW}' "
            "and attributes.status = 'FINISHED'"
        ),
        max_results=50_000,
    )
    return {
        tags[DIGEST_TAG]: Seen(run.info.run_id, int(tags[STEP_TAG]), tags[STATUS_TAG])
        for run in runs
        if DIGEST_TAG in (tags := run.data.tags) and STEP_TAG in tags and STATUS_TAG in tags
    }


def _load_model(
    job: MonitorJobConfig, parent: RunLogger, tmp: Path, reference: TaskData
) -> tuple[EmbeddingModel, RegisteredModel | None]:
    """The monitored model: a registered model URI or a model config, through the embedding cache.

    A kind fitted per dataset is fitted here on the ``reference`` data (as ``evaluate`` fits it on
    its dataset: inputs only, never labels); the reference, every window and every quality check
    are then embedded by this one fitted model. A registered fit (``model_uri``) is never refitted:
    it embeds everything as it was registered.
    """
    from embsel_mlflow.candidates import build_encoder, get_kind
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.profiling.modality import refuse_candidate

    registered = None
    if job.model_uri:
        from embsel_mlflow.tracking.registered_model import load_registered_model

        if job.model is not None:
            raise ConfigError(f"give either model_uri ({job.model_uri}) or model={job.model.name}, not both")
        registered = load_registered_model(parent.client, job.model_uri, tmp / "registered")
        parent.set_tags(
            {"embsel.monitor.model_uri": job.model_uri, "embsel.monitor.model_version": registered.version}
        )
        job.model = registered.config
        # its kind is known only now (the logged one): the same kind check as for model=<config>
        refuse_candidate(job.model, job.data.task)
    if job.model is None:
        raise ConfigError(
            "no model to monitor: give model=<config> (e.g. model=minilm) or model_uri=models:/NAME@champion"
        )
    log.info("loading model '%s' (%s)", job.model.name, job.model.name_or_path)
    kind = get_kind(job.model.kind, model=job.model.name)
    encoder = build_encoder(job.model, cache=open_cache(job.cache), tracking_uri=job.tracking.uri)
    if not encoder.registrable and not kind.fitted_per_dataset:
        raise ModelError(
            f"model {job.model.name} ({job.model.kind}) is not a fixed embedding model (lexical or "
            "remote): it cannot be monitored; give a transformer, static or fitted-per-dataset model"
        )
    # pre-trained, or a registered fit (model_uri): itself; fitted per dataset: fitted here
    fitted = encoder.for_dataset(reference)
    tags = {"embsel.model_source": fitted.source.path_or_id, "embsel.model_sha256": fitted.source.sha256}
    if kind.fitted_per_dataset and fitted is not encoder:
        tags["embsel.monitor.fitted_on"] = f"{reference.name} [{reference.split}]"
        log.info("model %s fitted on the reference %s", job.model.name, tags["embsel.monitor.fitted_on"])
    parent.set_tags(tags)
    return fitted, registered


def _reference_sample(job: MonitorJobConfig) -> tuple[TaskData, ReferenceSample]:
    """The reference data and its items (and the role ``evaluate`` embeds them in), guarded for modality."""
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.evaluate import guard_context
    from embsel_mlflow.monitoring.plan import reference_sample
    from embsel_mlflow.profiling.modality import refuse_modality_mismatch

    data = load_task_data(job.data, split=job.monitor.reference_split)
    # job.model is None for model_uri: its kind is checked once the registered model is read
    refuse_modality_mismatch(
        data, job.profile, root=job.data.root, model=job.model, context=guard_context(job)
    )
    return data, reference_sample(data, job.monitor)


def _reference(session: Session, sample: ReferenceSample) -> Reference:
    """The reference embeddings (given, or through the model and its cache) and text profile."""
    from embsel_mlflow.monitoring.plan import given_reference_embeddings
    from embsel_mlflow.monitoring.runner import prepare_reference

    job = session.job
    given = given_reference_embeddings(job.monitor, sample.keep)
    log.info("reference: %d %s of %s", len(sample.texts), sample.noun, job.data.name)
    return prepare_reference(
        sample.texts, session.encoder, tokenizer=session.tokenizer, cfg=job.monitor, profile=job.profile,
        embeddings=given, role=sample.role,
    )  # fmt: skip


def _tokenizer(job: MonitorJobConfig) -> CandidateTokenizer:
    """The model's tokenizer for the text signals; word counts when it has none that loads."""
    from embsel_mlflow.text.tokens import CandidateTokenizer, load_candidate_tokenizer

    assert job.model is not None
    try:
        return load_candidate_tokenizer(job.model.name, job.model)
    except ModelError as exc:
        log.warning("text signals use word counts: %s", exc)
        return CandidateTokenizer(job.model.name, note=str(exc))


def _monitor_window(session: Session, reference: Reference, window: Window, step: int) -> WindowReport:
    """One child run: the library's report of the window, logged there and at ``step`` on the parent."""
    from embsel_mlflow.monitoring.runner import report_window
    from embsel_mlflow.tracking.run import tracked_run

    job = session.job
    tags = {KEY_TAG: session.key, ROLE_TAG: WINDOW, DIGEST_TAG: window.digest, STEP_TAG: str(step)}
    run_name = f"window {step}: {window.name}"
    with tracked_run(
        job.tracking, entry_point=STEP, run_name=run_name, parent_run_id=session.parent.run_id
    ) as child:
        child.set_tags(
            {
                **tags,
                "embsel.monitor.window": window.name,
                "embsel.monitor.window_source": window.table.source,
                "embsel.monitor.window_time": time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(window.timestamp)
                ),
            }
        )
        report = report_window(
            reference, window, session.encoder, cfg=job.monitor, profile=job.profile,
            tokenizer=session.tokenizer, baseline=lambda: _baseline(session),
            score=lambda w: _score(session, child, w),
        )  # fmt: skip
        _log_window(session, reference, child, window, step, report)
    return report


def _log_window(
    session: Session, reference: Reference, child: RunLogger, window: Window, step: int, report: WindowReport
) -> None:
    """A window's report: metrics (child and parent, at its step and time), tags, files, projection."""
    from embsel_mlflow.monitoring.neighbours import shifted_markdown
    from embsel_mlflow.monitoring.plots import projection_figure

    cfg = session.job.monitor
    timestamp_ms = int(window.timestamp * 1000)
    metrics = report.metrics()
    child.log_metrics(metrics, step=step, timestamp_ms=timestamp_ms)
    from embsel_mlflow.tracking.descriptions import NOTE_TAG, monitor_description

    child.set_tags({**report.tags(), NOTE_TAG: monitor_description(window.name, report.tags())})
    child.log_dict(report.to_dict(), "monitor/window.json")
    child.log_dict({"shifted": report.shifted}, "monitor/shifted_texts.json")
    child.log_text(shifted_markdown(report.shifted), "monitor/shifted_texts.md")
    child.log_figure(
        projection_figure(reference.embeddings, [(window.name, report.embeddings)],
                          points=cfg.projection_points, seed=cfg.drift.seed),
        "plots/projection.png",
    )  # fmt: skip
    session.parent.log_metrics(metrics, step=step, timestamp_ms=timestamp_ms)


def _score(session: Session, child: RunLogger, window: Window) -> Score:
    """Re-evaluate the labelled window with the task's evaluator, logging what ``evaluate`` logs."""
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.evaluate import evaluate_in_run, scoring_job

    job = session.job
    assert window.quality_data is not None and job.model is not None
    evaluate_job = scoring_job(job, model=job.model, data=window.quality_data)
    data = load_task_data(window.quality_data)
    # the model embedding the windows (a fitted kind: fitted on the reference, not refitted here)
    result = evaluate_in_run(child, evaluate_job, data, session.encoder)
    return result.main_score_name, result.main_score


def _baseline(session: Session) -> Baseline:
    """(score, metric, source): a run's metric, the registered model's source run, or the reference data."""
    if session.baseline is None:
        quality = session.job.monitor.quality
        run_id = quality.baseline_run_id or (session.registered.run_id if session.registered else None)
        # A champion's source run that never scored this dataset is no baseline for it: the
        # reference data is scored instead. A run or metric the user named must hold the score.
        required = bool(quality.baseline_run_id or quality.baseline_metric)
        found = _run_baseline(session, run_id, required=required) if run_id else None
        session.baseline = found or _reference_baseline(session)
        score, metric, source = session.baseline
        session.parent.set_tags({BASELINE_TAG: f"{metric}={score:.6g} from {source}"})
    return session.baseline


def _run_baseline(session: Session, run_id: str, *, required: bool) -> Baseline | None:
    """The run's score for this dataset; None when it has none and ``required`` is false."""
    quality = session.job.monitor.quality
    try:
        run = session.parent.client.get_run(run_id)
    except Exception as exc:
        raise ConfigError(
            f"monitor.quality.baseline_run_id={run_id}: no such run in this store ({exc})"
        ) from exc
    candidate = (session.registered.candidate if session.registered else None) or run.data.tags.get(
        "embsel.winner"
    )
    names = [quality.baseline_metric] if quality.baseline_metric else ["main_score"]
    if not quality.baseline_metric and candidate:
        names.append(f"{candidate}/{session.job.data.name}")  # what select logs on its parent run
    for name in names:
        if name in run.data.metrics:
            return float(run.data.metrics[name]), name, f"run {run_id}"
    if not required:
        return None
    raise ConfigError(
        f"baseline run {run_id} has no metric {' or '.join(names)}; set monitor.quality.baseline_metric "
        f"to one of: {', '.join(sorted(run.data.metrics)) or '(none)'}"
    )


def _reference_baseline(session: Session) -> Baseline:
    """The reference data scored once in a child run of the parent (found again on later invocations)."""
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.evaluate import evaluate_in_run, scoring_job
    from embsel_mlflow.tracking.run import tracked_run

    job, parent = session.job, session.parent
    assert job.model is not None
    found = parent.client.search_runs(
        [parent.experiment_id],
        filter_string=(
            f"tags.`{KEY_TAG}` = '{session.key}' and tags.`{ROLE_TAG}` = '{BASELINE}' "
            "and attributes.status = 'FINISHED'"
        ),
        max_results=1,
    )
    if found and "main_score" in found[0].data.metrics:
        earlier = found[0]
        metric = earlier.data.tags.get(BASELINE_METRIC_TAG, "main_score")
        score = float(earlier.data.metrics["main_score"])
        return score, metric, f"reference data (run {earlier.info.run_id})"
    data = load_task_data(job.data)
    name = f"baseline: {job.data.name} (reference)"
    with tracked_run(job.tracking, entry_point=STEP, run_name=name, parent_run_id=parent.run_id) as run:
        run.set_tags({KEY_TAG: session.key, ROLE_TAG: BASELINE})
        evaluate_job = scoring_job(job, model=job.model, data=job.data)
        result = evaluate_in_run(run, evaluate_job, data, session.encoder)
        run.set_tags({BASELINE_METRIC_TAG: result.main_score_name})
        return result.main_score, result.main_score_name, f"reference data (run {run.run_id})"


def _log_parent_artifacts(
    session: Session, reference: Reference, new: list[tuple[Window, WindowReport]]
) -> None:
    """The latest verdict as tags, the time series (whole history) and the projection of this invocation."""
    from embsel_mlflow.monitoring.plots import projection_figure, timeseries_figure
    from embsel_mlflow.tracking.descriptions import NOTE_TAG, monitor_description

    parent, cfg = session.parent, session.job.monitor
    if new:
        latest = new[-1][1]
        parent.set_tags(
            {
                **latest.tags(),
                "embsel.monitor.latest_window": new[-1][0].name,
                NOTE_TAG: monitor_description(new[-1][0].name, latest.tags()),
            }
        )
        parent.log_figure(
            projection_figure(reference.embeddings, [(w.name, r.embeddings) for w, r in new],
                              points=cfg.projection_points, seed=cfg.drift.seed),
            "plots/projection.png",
        )  # fmt: skip
    metrics = parent.client.get_run(parent.run_id).data.metrics
    p_keys = sorted(k for k in metrics if k.startswith("drift/") and k.endswith("/p_value"))
    series = [_history(parent, key, key.split("/")[1]) for key in p_keys]
    quality = (
        _history(parent, "quality/main_score", "quality main score")
        if "quality/main_score" in metrics
        else None
    )
    band = None
    if quality is not None and "quality/baseline" in metrics:
        baseline = metrics["quality/baseline"]
        band = (baseline - cfg.quality.tolerance, baseline)
    if series:
        parent.log_figure(timeseries_figure(series, cfg.drift.alpha, quality, band), "plots/timeseries.png")


def _history(parent: RunLogger, key: str, label: str) -> Any:
    from embsel_mlflow.monitoring.plots import Series

    points = sorted(parent.client.get_metric_history(parent.run_id, key), key=lambda m: m.step)
    return Series(label, [m.step for m in points], [m.value for m in points])
