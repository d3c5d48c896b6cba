"""One task abstraction for every evaluation task (MTEB v2 style).

A task takes in-memory :class:`TaskData` and an :class:`EvaluationConfig`, encodes what it
needs through any :class:`TextEncoder`, and returns a :class:`TaskResult` whose score names
are MTEB's.
"""

from __future__ import annotations

import logging
import numbers
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from embsel_mlflow.errors import ConfigError, DataError, ModelError, first_line

if TYPE_CHECKING:
    import evaluate
    import pandas as pd

    from embsel_mlflow.config import EvaluationConfig
    from embsel_mlflow.data.task_data import DataWarning, TaskData
    from embsel_mlflow.media.items import Media

logger = logging.getLogger(__name__)


@runtime_checkable
class TextEncoder(Protocol):
    """Anything that turns inputs into a (len(texts), dim) array.

    The inputs are texts, or image/audio :class:`~embsel_mlflow.media.Media` items (one modality
    per call). ``role`` is "query" or "document" for asymmetric tasks (retrieval) and None
    otherwise; models use it to pick their text prompts.
    """

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray: ...


@dataclass
class TaskResult:
    """Scores of one task on one dataset split, with what was encoded to get them."""

    task: str
    dataset: str
    split: str
    scores: dict[str, float]  # metric name (MTEB's) -> value
    main_score_name: str
    per_item: pd.DataFrame | None = None
    encode_seconds: float = 0.0
    num_texts_encoded: int = 0
    # Data that makes the scores questionable, with counts (the tracking layer logs them).
    warnings: list[DataWarning] = field(default_factory=list)

    @property
    def main_score(self) -> float:
        return self.scores[self.main_score_name]


@dataclass
class TaskOutput:
    """What a task computed, before the shared extra metrics are added.

    ``metric_inputs`` holds the task's natural (predictions, references) for extra evaluate
    modules: one pair per experiment; their scalar results are averaged over experiments.
    """

    scores: dict[str, float]
    per_item: pd.DataFrame | None = None
    metric_inputs: list[tuple[list[Any], list[Any]]] = field(default_factory=list)


@dataclass
class _ExtraMetric:
    prefix: str
    path: str
    module: evaluate.EvaluationModule
    kwargs: dict[str, Any]


class EvalTask(ABC):
    """Base class: validates the data, times the encoder, runs extra evaluate modules."""

    task_type: ClassVar[str]  # the family's name (data.task)
    main_score_name: ClassVar[str]
    examples_type: ClassVar[type]
    # What extra metrics receive, for the error message when a task cannot feed them.
    extra_metric_inputs: ClassVar[str | None] = None

    def __init__(self, data: TaskData, cfg: EvaluationConfig) -> None:
        if not isinstance(data.examples, self.examples_type):
            raise DataError(
                f"dataset '{data.name}': a {self.task_type} task needs {self.examples_type.__name__}, "
                f"got {type(data.examples).__name__}; check data.task"
            )
        self.data = data
        self.cfg = cfg
        self.warnings: list[DataWarning] = list(data.warnings)
        self._validate()
        self._extra_metrics = self._load_extra_metrics()
        self._encode_seconds = 0.0
        self._num_texts_encoded = 0

    @property
    def examples(self) -> Any:
        return self.data.examples

    def evaluate(self, encoder: TextEncoder) -> TaskResult:
        """Encode, score and return the task's result."""
        self._encode_seconds = 0.0
        self._num_texts_encoded = 0
        output = self._run(encoder)
        scores = {name: float(value) for name, value in output.scores.items()}
        scores.update(self._extra_scores(output.metric_inputs))
        self._check_finite(scores)
        for warning in self.warnings:
            logger.warning("%s: %s", self.data.name, warning.message)
        return TaskResult(
            task=str(self.task_type),
            dataset=self.data.name,
            split=self.data.split,
            scores=scores,
            main_score_name=self.main_score_name,
            per_item=output.per_item,
            encode_seconds=self._encode_seconds,
            num_texts_encoded=self._num_texts_encoded,
            warnings=list(self.warnings),
        )

    @abstractmethod
    def _run(self, encoder: TextEncoder) -> TaskOutput:
        """Encode and compute the task's own scores."""

    def _validate(self) -> None:  # noqa: B027 -- optional hook, not abstract
        """Check the examples; raise DataError with one line naming the problem.

        Data that makes the scores meaningless is an error; data that makes them questionable
        is recorded with :meth:`warn` (and logged on the run with its count).
        """

    def warn(self, code: str, message: str, count: int) -> None:
        from embsel_mlflow.data.task_data import DataWarning

        self.warnings.append(DataWarning(code=code, message=f"{self._where()}: {message}", count=count))

    def _check_finite(self, scores: dict[str, float]) -> None:
        """A score that could not be computed (NaN, inf) is an error, never a reported number."""
        bad = [name for name, value in scores.items() if not np.isfinite(value)]
        if bad:
            raise DataError(
                f"{self._where()}: {', '.join(bad)} cannot be computed on this data (got "
                f"{scores[bad[0]]}); check that the gold values and the model's outputs vary"
            )

    def _encode(
        self, encoder: TextEncoder, texts: Sequence[str | Media], role: str | None = None
    ) -> np.ndarray:
        """Encode ``texts`` (or media items), adding the time and the count to this evaluation's totals."""
        texts = list(texts)
        start = time.perf_counter()
        embeddings = encoder.encode(texts, role=role, show_progress=self.cfg.show_progress)
        self._encode_seconds += time.perf_counter() - start
        self._num_texts_encoded += len(texts)
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(texts):
            raise ModelError(
                f"the encoder returned an array of shape {embeddings.shape} for {len(texts)} texts; "
                "it must return one row per text"
            )
        return embeddings

    def _where(self) -> str:
        return f"dataset '{self.data.name}' ({self.task_type}, split {self.data.split})"

    def _load_extra_metrics(self) -> list[_ExtraMetric]:
        from embsel_mlflow.metrics import load_metric

        specs = self.cfg.extra_metrics
        if specs and self.extra_metric_inputs is None:
            names = ", ".join(spec.name or spec.path for spec in specs)
            raise ConfigError(
                f"evaluation.extra_metrics ({names}) are not supported for {self.task_type} tasks: "
                "remove them from the config for this dataset"
            )
        extras = []
        for spec in specs:
            module = load_metric(spec.path)
            extras.append(_ExtraMetric(spec.name or module.name, spec.path, module, dict(spec.kwargs)))
        return extras

    def _extra_scores(self, metric_inputs: list[tuple[list[Any], list[Any]]]) -> dict[str, float]:
        scores: dict[str, float] = {}
        for extra in self._extra_metrics:
            runs = [self._compute_extra(extra, preds, refs) for preds, refs in metric_inputs]
            for key in runs[0]:
                values = [run[key] for run in runs if key in run]
                scores[f"{extra.prefix}_{key}"] = float(np.mean(values))
        return scores

    def _compute_extra(self, extra: _ExtraMetric, predictions: list[Any], references: list[Any]) -> dict:
        try:
            result = extra.module.compute(predictions=predictions, references=references, **extra.kwargs)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"extra metric '{extra.prefix}' ({extra.path}) failed on {self._where()}: {first_line(exc)}; "
                f"it receives {self.extra_metric_inputs}"
            ) from exc
        scalars = {}
        for key, value in (result or {}).items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                scalars[key] = float(value)
            else:  # lists, dicts, strings: not a loggable score
                logger.warning("extra metric %s: skipping non-scalar output %r", extra.prefix, key)
        return scalars
