"""Evaluate every candidate on every dataset: datasets loaded once, each model loaded once.

Plain library code. Where the work of one (candidate, dataset) pair is recorded is up to a
:class:`PairTracker`: the ``select`` job (``jobs.select``) opens one nested MLflow run per pair and
evaluates through ``evaluate_in_run``; :class:`PlainTracker` just evaluates.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from embsel_mlflow.errors import ConfigError, EmbselError
from embsel_mlflow.selection.efficiency import Efficiency, is_ranker, tokens_used
from embsel_mlflow.selection.measurement_cache import MeasurementCache, Provenance, measure_now

if TYPE_CHECKING:
    from embsel_mlflow.config import (
        DataConfig,
        EfficiencyConfig,
        EvaluationConfig,
        ModelConfig,
        SelectConfig,
    )
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import TaskResult

log = logging.getLogger("embsel.select")


@dataclass
class PairOutcome:
    """One candidate on one dataset: its result and efficiency, or why there is none."""

    candidate: str
    dataset: str
    task: str
    result: TaskResult | None = None
    efficiency: Efficiency | None = None
    efficiency_provenance: Provenance | None = None  # timed in this run, or reused (and when)
    error: str | None = None  # the one-line reason the pair failed
    not_applicable: str | None = None  # e.g. a lexical ranker on an STS dataset (no run at all)
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class FineTune:
    """One fine-tune of a zero-shot candidate on one dataset's train split (``select.finetune_top_k``)."""

    candidate: str
    dataset: str
    tuned: str  # the tuned model's candidate name in the final ranking
    run_id: str | None = None  # the run that trained it (a child ``train`` run under ``embsel select``)
    error: str | None = None  # the one-line reason the fine-tune failed


@dataclass
class CandidateInfo:
    name: str
    kind: str
    registrable: bool = True
    load_error: str | None = None
    config: Any = None  # the ModelConfig


@dataclass
class SelectionRun:
    """Everything the decision needs: the outcomes of all pairs, in candidate-major order."""

    candidates: dict[str, CandidateInfo]
    datasets: dict[str, str]  # dataset -> task
    outcomes: list[PairOutcome] = field(default_factory=list)
    baselines: dict[str, str] = field(default_factory=dict)  # variant -> its candidate's fp32 variant
    # Registrable candidates kept loaded (only when the winner is to be registered): no second load.
    kept_models: dict[str, Any] = field(default_factory=dict)
    finetunes: list[FineTune] = field(default_factory=list)  # select.finetune_top_k's trainings
    # Registrable candidates evaluated elsewhere (select.executor=ray): loaded here when registered.
    loaders: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def kept_model(self, name: str) -> Any:
        """The loaded model of ``name`` to register, or None where none is kept or loadable."""
        model = self.kept_models.get(name)
        if model is None and name in self.loaders:
            model = self.kept_models[name] = self.loaders[name]()
        return model

    def outcome(self, candidate: str, dataset: str) -> PairOutcome:
        return next(o for o in self.outcomes if o.candidate == candidate and o.dataset == dataset)

    @property
    def failed(self) -> list[PairOutcome]:
        return [o for o in self.outcomes if o.error is not None]


class Measurements(Protocol):
    """Where a pair's efficiency comes from: a ``MeasurementCache``, or a tuned model's base."""

    def measure(
        self, model: Any, data: TaskData, cfg: EfficiencyConfig, *, billed_tokens: int | None = None
    ) -> tuple[Efficiency, Provenance]: ...


class PairScope(Protocol):
    """Where one pair is evaluated and its extra metrics go (an MLflow child run, or nothing)."""

    run_id: str | None

    def evaluate(self, model: Any, data: TaskData) -> TaskResult: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class PairTracker(Protocol):
    def pair(self, candidate: str, model: ModelConfig, data: DataConfig) -> contextlib.AbstractContextManager:
        """A context yielding a :class:`PairScope`; an exception inside marks the pair failed."""
        ...


@dataclass
class PlainScope:
    evaluation: EvaluationConfig
    run_id: str | None = None

    def evaluate(self, model: Any, data: TaskData) -> TaskResult:
        from embsel_mlflow.families import build_task

        return build_task(data, self.evaluation).evaluate(model)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass


@dataclass
class PlainTracker:
    """No tracking: evaluate in process (the library call)."""

    evaluation: EvaluationConfig

    @contextlib.contextmanager
    def pair(self, candidate: str, model: ModelConfig, data: DataConfig) -> Iterator[PlainScope]:
        yield PlainScope(self.evaluation)


def default_loader(
    cache: Any = None, calibration_data: Sequence[DataConfig] = (), tracking_uri: str | None = None
) -> Callable[[ModelConfig], Any]:
    """Build a candidate with the model factory (every kind), through ``cache`` when given.

    ``calibration_data``: the datasets whose calibration split calibrates int8 variants;
    ``tracking_uri``: the store of from_run candidates' runs.
    """

    def load(cfg: ModelConfig) -> Any:
        from embsel_mlflow.candidates.base import build_encoder

        return build_encoder(cfg, cache=cache, calibration_data=calibration_data, tracking_uri=tracking_uri)

    return load


def _attempt(function: Callable[[], Any]) -> Any:
    """The value, or the EmbselError it raised (re-raised later inside each pair's run)."""
    try:
        return function()
    except EmbselError as exc:
        return exc


def prepare(
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    evaluation: EvaluationConfig,
    tracker: PairTracker | None,
    load_model: Callable[[ModelConfig], Any] | None,
) -> tuple[PairTracker, Callable[[ModelConfig], Any], bool]:
    """The checks and defaults of a selection's pairs, wherever they run: (tracker, loader, whether
    some dataset is a retrieval one)."""
    from embsel_mlflow.families import get_family

    if not candidates:
        raise ConfigError("no candidates: choose model configs, e.g. candidates=[minilm,static_minilm]")
    if not datasets:
        raise ConfigError("no datasets: choose data configs, e.g. datasets=[stsb,scifact]")
    tracker = tracker or PlainTracker(evaluation)
    load_model = load_model or default_loader(calibration_data=list(datasets.values()))
    return tracker, load_model, any(get_family(d.task).ranks_documents for d in datasets.values())


def run_selection(
    candidates: Mapping[str, ModelConfig],
    datasets: Mapping[str, DataConfig],
    cfg: SelectConfig,
    evaluation: EvaluationConfig,
    *,
    tracker: PairTracker | None = None,
    load_model: Callable[[ModelConfig], Any] | None = None,
    measurements: Measurements | None = None,
) -> SelectionRun:
    """Evaluate every candidate on every dataset and measure its efficiency there.

    With ``measurements``, an efficiency measured before for the same model, data sample and
    machine is reused instead of timed again. With ``cfg.register`` set, registrable candidates
    stay loaded in ``SelectionRun.kept_models`` so that the winner is registered without a second
    load; otherwise each candidate is released after its datasets (one in memory at a time). A
    kind fitted per dataset whose fit can be served (the image and audio feature baselines) is
    registrable as that fit when the selection holds one dataset: its fitted model is kept.
    A candidate that fails to load, or a dataset that fails to load, fails its pairs (each with
    the one-line reason) and the other pairs go on. A ranker (BM25) is not applicable to
    non-retrieval datasets; where the selection holds no retrieval dataset at all it is an error.
    """
    from embsel_mlflow.families import load_task_data

    tracker, load_model, has_retrieval = prepare(candidates, datasets, evaluation, tracker, load_model)
    if measurements is None:  # none kept across runs, but a variant of the same network takes its base's
        measurements = MeasurementCache(None)

    loaded: dict[str, Any] = {}
    for name, data_cfg in datasets.items():
        log.info("loading data '%s' (%s)", name, data_cfg.task)
        loaded[name] = _attempt(partial(load_task_data, data_cfg))

    selection = SelectionRun(candidates={}, datasets={name: str(d.task) for name, d in datasets.items()})
    references = timing_references(candidates)
    bases: dict[str, Any] = {}  # loaded bases that variants still to come are timed against
    for position, (name, model_cfg) in enumerate(candidates.items()):
        log.info("loading candidate '%s' (%s)", name, model_cfg.name_or_path)
        model = _attempt(partial(load_model, model_cfg))
        failed_load = isinstance(model, EmbselError)
        info = selection.candidates[name] = candidate_info(name, model_cfg, model)
        fits: list[Any] = []  # the models fitted per dataset that can be logged (one per dataset)
        for data_name, data_cfg in datasets.items():
            outcome = PairOutcome(name, data_name, selection.datasets[data_name])
            selection.outcomes.append(outcome)
            reference = _reference(selection, bases, references.get(name), data_name)
            ready = run_pair(
                outcome, tracker, model, model_cfg, data_cfg, loaded[data_name], cfg, measurements,
                has_retrieval=has_retrieval, reference=reference,
            )  # fmt: skip
            if ready is not None and ready is not model and getattr(ready, "registrable", False):
                fits.append(ready)
        registered = model
        if not failed_load and not info.registrable and len(datasets) == 1 and len(fits) == 1:
            # fitted on the one dataset: that fit is the model to register (and what was ranked)
            info.registrable, registered = True, fits[0]
        if cfg.register and info.registrable:
            selection.kept_models[name] = registered
        still_needed = {
            references[later] for later in list(candidates)[position + 1 :] if later in references
        }
        if name in still_needed and not failed_load:
            bases[name] = model
        for done in set(bases) - still_needed:
            del bases[done]
        del model, registered, fits
        gc.collect()  # without registration, one candidate's weights in memory at a time
    return selection


def timing_references(candidates: Mapping[str, ModelConfig]) -> dict[str, str]:
    """Variant -> the candidate whose network it is a cheaper run of (bf16, int8 weights, another
    backend): it is timed interleaved with that base. Stored-embedding variants run the base's
    network itself and take its timing (``measurement_cache``)."""
    from embsel_mlflow.models.variants import network_baseline

    found = {}
    for name, model_cfg in candidates.items():
        base = network_baseline(model_cfg)
        match = next((other for other, cfg in candidates.items() if base is not None and cfg == base), None)
        if match is not None:
            found[name] = match
    return found


def _reference(
    selection: SelectionRun, bases: Mapping[str, Any], base: str | None, dataset: str
) -> tuple[Any, Efficiency] | None:
    """The loaded base of a variant, with its efficiency on ``dataset`` (None: time it alone)."""
    if base is None or base not in bases:
        return None
    efficiency = selection.outcome(base, dataset).efficiency
    if efficiency is None:
        return None
    log.info("efficiency on '%s': timed side by side with '%s'", dataset, base)
    return bases[base], efficiency


def candidate_info(name: str, model_cfg: ModelConfig, model: Any) -> CandidateInfo:
    """What the decision needs to know of a loaded candidate (``model``: it, or its load error)."""
    failed_load = isinstance(model, EmbselError)
    return CandidateInfo(
        name,
        kind=getattr(model_cfg.kind, "value", str(model_cfg.kind)),
        registrable=not failed_load and bool(getattr(model, "registrable", True)),
        load_error=str(model) if failed_load else None,
        config=model_cfg,
    )


def node_tags() -> dict[str, str]:
    """The machine that ran a pair (its efficiency was measured there): host, CPU, cores, and the
    Ray node under ``select.executor=ray``; the GPU is in ``hardware.gpu`` (evaluate's tags)."""
    import platform
    import sys

    from embsel_mlflow.selection.measurement_cache import hardware_fingerprint

    facts = hardware_fingerprint(None)
    tags = {
        "hardware.hostname": platform.node(),
        "hardware.cpu_model": str(facts["cpu"]),
        "hardware.cpus_available": str(facts["cpus"]),
    }
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        tags["hardware.ray_node_id"] = context.get_node_id()
        with contextlib.suppress(Exception):  # outside a task (the driver) there are no assigned resources
            assigned = context.get_assigned_resources()
            tags["hardware.ray_resources"] = ",".join(f"{k}={v:g}" for k, v in sorted(assigned.items()))
    return tags


def run_pair(
    outcome: PairOutcome,
    tracker: PairTracker,
    model: Any,
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    data: Any,
    cfg: SelectConfig,
    measurements: Measurements | None,
    *,
    has_retrieval: bool,
    reference: tuple[Any, Efficiency] | None = None,
) -> Any:
    """One pair, in this process or in a Ray task, into ``outcome``: not applicable (a ranker on a
    non-retrieval dataset of a selection that has retrieval ones), or evaluated and timed. The
    model as evaluated (fitted on ``data`` for a kind fitted per dataset), or None.

    ``reference``: a variant's loaded base and its efficiency here, to time the two interleaved."""
    from embsel_mlflow.families import get_family

    if (
        not isinstance(model, EmbselError)
        and is_ranker(model)
        and not get_family(outcome.task).ranks_documents
        and has_retrieval
    ):
        outcome.not_applicable = "ranks documents: retrieval datasets only"
        return None
    log.info("evaluating '%s' on '%s'", outcome.candidate, outcome.dataset)
    try:
        with tracker.pair(outcome.candidate, model_cfg, data_cfg) as scope:
            outcome.run_id = scope.run_id
            for failure in (data, model):
                if isinstance(failure, EmbselError):
                    raise type(failure)(str(failure))
            ready = model.for_dataset(data)
            billed_before = tokens_used(ready)
            outcome.result = scope.evaluate(ready, data)
            billed_after = tokens_used(ready)
            billed = None if billed_before is None or billed_after is None else billed_after - billed_before
            timing: dict[str, Any] = {"billed_tokens": billed}
            if reference is not None and isinstance(measurements, MeasurementCache | None):
                # (a tuned model's BaseEfficiency takes its base's numbers: nothing to interleave)
                timing["reference"] = (reference[0].for_dataset(data), reference[1])
            measure = measurements.measure if measurements is not None else measure_now
            # A model left unloaded (all its embeddings cached) names its device as a loaded one
            # would, so the measurement stored when it was loaded is found again.
            resolve = getattr(getattr(ready, "inner", ready), "resolve_device", None)
            if callable(resolve):
                resolve()
            outcome.efficiency, outcome.efficiency_provenance = measure(ready, data, cfg.efficiency, **timing)
            scope.log_metrics(outcome.efficiency.metrics())
            scope.set_tags({**outcome.efficiency_provenance.tags(), **node_tags()})
    except EmbselError as exc:
        outcome.result = None
        outcome.error = str(exc)
        log.error("%s on %s failed: %s", outcome.candidate, outcome.dataset, exc)
        return None
    return ready
