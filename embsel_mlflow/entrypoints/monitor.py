"""``embsel monitor``: a reference (data + model) against new windows of text, as MLflow time series.

Structure in MLflow: one parent run per monitored model and reference (found again by its
``embsel.monitor.key`` tag and reopened on every invocation, so the time series continue),
one child run per window. The parent holds the time series (step = window index, timestamp =
the window's time), the latest verdict as tags and the plots; a child holds its window's
metrics, tags ``drift.<method>=true|false``, the quality evaluation (what ``evaluate`` logs)
and the most shifted texts. A window already monitored (same content digest) is skipped.

Exit codes: 0 all well, ``monitor.drift_exit_code`` (3) drift or a quality drop, 2 bad input.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import MonitorJobConfig, TrackingConfig
from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.jobs.app import EXIT_BAD_INPUT, run_app, to_job_config

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.monitoring.quality import QualityCheck
    from embsel_mlflow.monitoring.runner import Reference, WindowReport
    from embsel_mlflow.monitoring.windows import Window
    from embsel_mlflow.profiling.tokens import CandidateTokenizer
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

_outcome: dict[str, int] = {}  # the exit code of the last job when it detected drift (read by main)


@dataclass
class Session:
    """What every window of one invocation shares."""

    job: MonitorJobConfig
    client: MlflowClient
    parent: RunLogger
    key: str
    encoder: EmbeddingModel
    tokenizer: CandidateTokenizer | None
    reference: Reference
    registered: RegisteredModel | None
    baseline: tuple[float, str, str] | None = None  # (score, metric name, source), found once


def monitor_job(cfg: Any, tracking: TrackingConfig, overrides: list[str]) -> float:
    """Open (or reopen) the parent run, monitor every new window, log; returns the number of alerts."""
    from omegaconf import OmegaConf

    from embsel_mlflow.tracking.config_logging import log_config
    from embsel_mlflow.tracking.run import tracked_run
    from embsel_mlflow.tracking.store import open_store, resolve_tracking_uri
    from embsel_mlflow.tracking.system_tags import version_tags

    key = monitor_key(cfg)
    client = open_store(resolve_tracking_uri(tracking.uri))
    reopen = None if os.environ.get("MLFLOW_RUN_ID") else find_parent(client, tracking.experiment, key)
    model_label = OmegaConf.select(cfg, "model_uri", default=None) or OmegaConf.select(
        cfg, "model.name", default="model", throw_on_missing=False
    )
    data_name = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    name = tracking.run_name or f"monitor {model_label} on {data_name}"
    with (
        tempfile.TemporaryDirectory(prefix="embsel-monitor-") as tmp,
        tracked_run(tracking, entry_point=STEP, run_name=name, reopen_run_id=reopen) as parent,
    ):
        parent.set_tags(
            {KEY_TAG: key, ROLE_TAG: PARENT, "embsel.model": model_label, "embsel.dataset": data_name}
        )
        parent.set_tags(version_tags())
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        if reopen:  # params are set and immutable: this invocation's config as files only
            log_config(parent, cfg, overrides, artifact_dir=f"invocations/{stamp}/", with_params=False)
        else:
            log_config(parent, cfg, overrides)
        job = to_job_config(cfg, MonitorJobConfig, STEP)
        statuses = _monitor(job, parent, key, Path(tmp))
        parent_id = parent.run_id
    alerts = sum(status != "ok" for status in statuses)
    verdict = f"{alerts} of {len(statuses)} window(s) alerted" if alerts else f"{len(statuses)} window(s) ok"
    print(f"monitor: {verdict} (parent run {parent_id})")
    if alerts:
        _outcome["exit_code"] = job.monitor.drift_exit_code
    return float(alerts)


def _monitor(job: MonitorJobConfig, parent: RunLogger, key: str, tmp: Path) -> list[str]:
    from embsel_mlflow.data.task_loader import load_task_data
    from embsel_mlflow.models.cache import cache_dir
    from embsel_mlflow.monitoring.runner import prepare_reference
    from embsel_mlflow.monitoring.sampling import subsample_indices
    from embsel_mlflow.monitoring.windows import data_windows, file_windows, task_texts
    from embsel_mlflow.profiling.modality import refuse_media_tables, refuse_modality_mismatch

    judged_dir = cache_dir(job.cache) / "judged-queries"  # where judged retrieval windows' qrels go
    windows = [*file_windows(job.current, job.data, judged_dir), *data_windows(job.windows, job.data)]
    if not windows:
        raise ConfigError(
            "no window to monitor: give current.paths=[file,...], current.dir=<folder of window files> "
            "or windows=[<data config>,...]"
        )
    for window in windows:  # before any model is loaded: bad input costs nothing
        refuse_media_tables([window.table], window.name, job.profile, root=job.current.root)
    seen = previous_windows(parent.client, parent.experiment_id, key)
    statuses: list[str] = []
    for window in windows:
        if window.digest in seen:
            run_id, step, status = seen[window.digest]
            print(f"window {window.name}: already monitored as step {step} ({status}, run {run_id}); skipped")
            statuses.append(status)
    todo = [window for window in windows if window.digest not in seen]
    if not todo:
        return statuses  # nothing new: no model or reference to load
    reference_data = load_task_data(job.data, split=job.monitor.reference_split)
    refuse_modality_mismatch(reference_data, job.profile, root=job.data.root)
    texts = task_texts(reference_data)
    keep = subsample_indices(len(texts), job.monitor.max_reference_texts, job.monitor.drift.seed)
    texts = [texts[i] for i in keep]
    encoder, registered = _load_model(job, parent, tmp)
    tokenizer = _tokenizer(job, encoder) if job.monitor.text.enabled else None
    given = _reference_embeddings(job, keep)
    log.info("reference: %d texts of %s", len(texts), job.data.name)
    reference = prepare_reference(
        texts, encoder, tokenizer=tokenizer, cfg=job.monitor, profile=job.profile, embeddings=given
    )
    session = Session(job, parent.client, parent, key, encoder, tokenizer, reference, registered)
    next_step = max((step for _, step, _ in seen.values()), default=-1) + 1
    new: list[tuple[Window, WindowReport]] = []
    for window in todo:
        if window.digest in {w.digest for w, _ in new}:
            print(f"window {window.name}: the same content as an earlier window of this run; skipped")
            continue
        report = _monitor_window(session, window, next_step)
        print(_summary_line(window, next_step, report))
        statuses.append(report.status)
        new.append((window, report))
        next_step += 1
    _log_parent_artifacts(session, new)
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


def previous_windows(client: MlflowClient, experiment_id: str, key: str) -> dict[str, tuple[str, int, str]]:
    """digest -> (run id, step, status) of the windows already monitored for ``key`` (FINISHED runs)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = '{WINDOW}' "
            "and attributes.status = 'FINISHED'"
        ),
        max_results=50_000,
    )
    return {
        run.data.tags[DIGEST_TAG]: (run.info.run_id, int(run.data.tags[STEP_TAG]), run.data.tags[STATUS_TAG])
        for run in runs
        if DIGEST_TAG in run.data.tags and STEP_TAG in run.data.tags and STATUS_TAG in run.data.tags
    }


def _load_model(
    job: MonitorJobConfig, parent: RunLogger, tmp: Path
) -> tuple[EmbeddingModel, RegisteredModel | None]:
    """The monitored model: a registered model URI or a model config, through the embedding cache."""
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.models.factory import build_encoder

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
    if job.model is None:
        raise ConfigError(
            "no model to monitor: give model=<config> (e.g. model=minilm) or model_uri=models:/NAME@champion"
        )
    log.info("loading model '%s' (%s)", job.model.name, job.model.name_or_path)
    encoder = build_encoder(job.model, cache=open_cache(job.cache), tracking_uri=job.tracking.uri)
    if not encoder.registrable:
        raise ModelError(
            f"model {job.model.name} ({job.model.kind}) is not a fixed embedding model (fitted per dataset, "
            "lexical or remote): it cannot be monitored; give a transformer or static model"
        )
    parent.set_tags(
        {"embsel.model_source": encoder.source.path_or_id, "embsel.model_sha256": encoder.source.sha256}
    )
    return encoder, registered


def _tokenizer(job: MonitorJobConfig, encoder: EmbeddingModel) -> CandidateTokenizer:
    """The model's tokenizer for the text signals; word counts when it has none that loads."""
    from embsel_mlflow.profiling.tokens import CandidateTokenizer, load_candidate_tokenizer

    assert job.model is not None
    try:
        return load_candidate_tokenizer(job.model.name, job.model)
    except ModelError as exc:
        log.warning("text signals use word counts: %s", exc)
        return CandidateTokenizer(job.model.name, note=str(exc))


def _reference_embeddings(job: MonitorJobConfig, keep: Any) -> Any:
    """``monitor.reference_embeddings`` (.npy, one row per reference text), rows ``keep``; None when unset."""
    import numpy as np

    from embsel_mlflow.data.loader import resolve_path
    from embsel_mlflow.errors import DataError

    if not job.monitor.reference_embeddings:
        return None
    path = resolve_path(job.monitor.reference_embeddings, ".", "monitor.reference_embeddings")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"monitor.reference_embeddings: cannot read {path} as a .npy array ({exc})") from exc
    if matrix.ndim != 2:
        raise DataError(f"monitor.reference_embeddings: {path} holds shape {matrix.shape}; need texts x dims")
    if job.monitor.max_reference_texts is not None and len(keep) < len(matrix):
        matrix = matrix[keep]
    return matrix


def _monitor_window(session: Session, window: Window, step: int) -> WindowReport:
    """One child run: drift, text signals, quality; its metrics also go to the parent at ``step``."""
    from embsel_mlflow.monitoring.neighbours import shifted_markdown
    from embsel_mlflow.monitoring.plots import projection_figure
    from embsel_mlflow.monitoring.runner import monitor_window
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
        report = monitor_window(
            session.reference,
            window.texts,
            session.encoder,
            cfg=job.monitor,
            profile=job.profile,
            tokenizer=session.tokenizer,
            name=window.name,
        )
        if window.quality_data is not None and job.monitor.quality.enabled:
            report.quality = _quality(session, child, window)
        timestamp_ms = int(window.timestamp * 1000)
        metrics = report.metrics()
        child.log_metrics(metrics, step=step, timestamp_ms=timestamp_ms)
        child.set_tags(report.tags())
        child.log_dict(report.to_dict(), "monitor/window.json")
        child.log_dict({"shifted": report.shifted}, "monitor/shifted_texts.json")
        child.log_text(shifted_markdown(report.shifted), "monitor/shifted_texts.md")
        child.log_figure(
            projection_figure(session.reference.embeddings, [(window.name, report.embeddings)],
                              points=job.monitor.projection_points, seed=job.monitor.drift.seed),
            "plots/projection.png",
        )  # fmt: skip
        session.parent.log_metrics(metrics, step=step, timestamp_ms=timestamp_ms)
    return report


def _quality(session: Session, child: RunLogger, window: Window) -> QualityCheck:
    """Re-evaluate the labelled window with the task's evaluator (what ``evaluate`` logs) vs the baseline."""
    from embsel_mlflow.config.schema import EvaluateJobConfig
    from embsel_mlflow.data.task_loader import load_task_data
    from embsel_mlflow.jobs.evaluate import evaluate_in_run
    from embsel_mlflow.monitoring.quality import QualityCheck

    job = session.job
    assert window.quality_data is not None and job.model is not None
    score, metric, source = _baseline(session)
    evaluate_job = EvaluateJobConfig(
        model=job.model, data=window.quality_data, tracking=job.tracking, evaluation=job.evaluation,
        cache=job.cache, profile=job.profile,
    )  # fmt: skip
    data = load_task_data(window.quality_data)
    result = evaluate_in_run(child, evaluate_job, data, session.encoder.for_dataset(data))
    if result.main_score_name != metric and metric != "main_score":
        log.info(
            "quality: window %s scored by %s, baseline metric %s", window.name, result.main_score_name, metric
        )
    return QualityCheck(
        result.main_score_name, result.main_score, score, source, job.monitor.quality.tolerance
    )


def _baseline(session: Session) -> tuple[float, str, str]:
    """(score, metric, source): a run's metric, the registered model's source run, or the reference data."""
    if session.baseline is None:
        quality = session.job.monitor.quality
        run_id = quality.baseline_run_id or (session.registered.run_id if session.registered else None)
        session.baseline = _run_baseline(session, run_id) if run_id else _reference_baseline(session)
        score, metric, source = session.baseline
        session.parent.set_tags({BASELINE_TAG: f"{metric}={score:.6g} from {source}"})
    return session.baseline


def _run_baseline(session: Session, run_id: str) -> tuple[float, str, str]:
    quality = session.job.monitor.quality
    try:
        run = session.client.get_run(run_id)
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
    raise ConfigError(
        f"baseline run {run_id} has no metric {' or '.join(names)}; set monitor.quality.baseline_metric "
        f"to one of: {', '.join(sorted(run.data.metrics)) or '(none)'}"
    )


def _reference_baseline(session: Session) -> tuple[float, str, str]:
    """The reference data scored once in a child run of the parent (found again on later invocations)."""
    from embsel_mlflow.config.schema import EvaluateJobConfig
    from embsel_mlflow.data.task_loader import load_task_data
    from embsel_mlflow.jobs.evaluate import evaluate_in_run
    from embsel_mlflow.tracking.run import tracked_run

    job = session.job
    assert job.model is not None
    found = session.client.search_runs(
        [session.parent.experiment_id],
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
    with tracked_run(
        job.tracking, entry_point=STEP, run_name=name, parent_run_id=session.parent.run_id
    ) as run:
        run.set_tags({KEY_TAG: session.key, ROLE_TAG: BASELINE})
        evaluate_job = EvaluateJobConfig(
            model=job.model, data=job.data, tracking=job.tracking, evaluation=job.evaluation,
            cache=job.cache, profile=job.profile,
        )  # fmt: skip
        result = evaluate_in_run(run, evaluate_job, data, session.encoder.for_dataset(data))
        run.set_tags({BASELINE_METRIC_TAG: result.main_score_name})
        return result.main_score, result.main_score_name, f"reference data (run {run.run_id})"


def _log_parent_artifacts(session: Session, new: list[tuple[Window, WindowReport]]) -> None:
    """The latest verdict as tags, the time series (whole history) and the projection of this invocation."""
    from embsel_mlflow.monitoring.plots import projection_figure, timeseries_figure

    parent, job = session.parent, session.job
    if new:
        latest = new[-1][1]
        parent.set_tags({**latest.tags(), "embsel.monitor.latest_window": new[-1][0].name})
        parent.log_figure(
            projection_figure(session.reference.embeddings, [(w.name, r.embeddings) for w, r in new],
                              points=job.monitor.projection_points, seed=job.monitor.drift.seed),
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
        band = (baseline - job.monitor.quality.tolerance, baseline)
    if series:
        parent.log_figure(
            timeseries_figure(series, job.monitor.drift.alpha, quality, band), "plots/timeseries.png"
        )


def _history(parent: RunLogger, key: str, label: str) -> Any:
    from embsel_mlflow.monitoring.plots import Series

    points = sorted(parent.client.get_metric_history(parent.run_id, key), key=lambda m: m.step)
    return Series(label, [m.step for m in points], [m.value for m in points])


def _summary_line(window: Window, step: int, report: WindowReport) -> str:
    methods = ", ".join(f"{r.method} p={r.p_value:.3g}{'*' if r.drifted else ''}" for r in report.drift)
    line = f"window {window.name} [step {step}, {report.texts} texts]: {report.status.upper()}  ({methods})"
    if report.quality is not None:
        q = report.quality
        line += f"; {q.metric} {q.score:.4f} vs baseline {q.baseline:.4f}"
        line += f" (drop {q.drop:+.4f}, tolerance {q.tolerance})"
    if report.text is not None:
        flagged = [name for name, alert in report.text.alerts.items() if alert]
        if flagged:
            line += f"; text signals: {', '.join(flagged)}"
    return line


def main(args: list[str]) -> int:
    from embsel_mlflow.config.store import register_configs, searchpath_dirs
    from embsel_mlflow.jobs.app import _record_failure, report, unknown_option_error
    from embsel_mlflow.tracking.run import record_failed_run

    register_configs(searchpath_dirs(args))
    error = unknown_option_error(args)
    if error:
        report(error)
        if not any(arg.startswith("-") for arg in args):
            _record_failure(STEP, args, error, record_failed_run)
        return EXIT_BAD_INPUT
    _outcome.clear()
    code = run_app(STEP, monitor_job, args)
    return _outcome.get("exit_code", 0) if code == 0 else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
