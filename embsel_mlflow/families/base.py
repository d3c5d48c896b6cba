"""A task family: one object that knows everything the steps ask about a kind of task.

Its name is the ``data.task`` string. It knows its examples dataclass and how to build them from
the dataset's tables, how to evaluate them (its :class:`EvalTask`), its main metric, which texts
each role embeds, what LSA may be fitted on, what a labelled monitoring window needs, its
per-item bootstrap statistic, its training pairs and its item count. Every step asks the family;
none switches on types.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.media.items import Media

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embsel_mlflow.config import EvaluationConfig
    from embsel_mlflow.data.tables import Tables
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.evaluation.base import EvalTask

# Splits a hold-out: item count -> (kept indices, held-out indices), sorted.
Splitter = Callable[[int], tuple["np.ndarray", "np.ndarray"]]

# One input a family hands to ``encode``: a text, or (image and audio families) a media.Media item.
# Typed Any, not ``str | Media``: the text-only callers of ``texts()``, ``fit_texts()`` ... keep
# their ``list[str]`` until they take media too.
Item = Any


class PairKind(StrEnum):
    """The training pairs a family's train split gives (training/pairs.py builds them)."""

    positive = "positive"  # (anchor, positive[, negative_1, ...]): in-batch negatives
    scored = "scored"  # (sentence1, sentence2, score in [0, 1])
    labelled = "labelled"  # (sentence1, sentence2, label 0/1)
    # ({image|audio}: Media item, text: its caption): CLIP/CLAP-style contrastive, in-batch negatives
    media_text = "media_text"


class TaskFamily(ABC):
    """Base class of a task family; register one instance with ``families.register_family``."""

    name: ClassVar[str]  # the data.task value
    examples_type: ClassVar[type]
    task_class: ClassVar[type[EvalTask]]
    # Columns (after the data config's role mapping) whose values a model embeds: the modality
    # guard checks them.
    embedded_columns: ClassVar[tuple[str, ...]] = ("text",)
    # The modalities its evaluation embeds (media.TEXT, IMAGE, AUDIO): a candidate must take all.
    modalities: ClassVar[frozenset[str]] = frozenset({"text"})
    # ``evaluation.*`` and ``data.*`` settings this family reads besides the common ones: only
    # those are logged as params of its runs (the full config is logged as config.yaml anyway).
    evaluation_settings: ClassVar[frozenset[str]] = frozenset()
    data_settings: ClassVar[frozenset[str]] = frozenset()
    # Columns a monitored window file needs to be re-scored with this family (None: never).
    window_columns: ClassVar[tuple[str, ...] | None] = None
    # The role whose texts monitor embeds as the reference (and evaluate encodes in that role).
    monitor_role: ClassVar[str | None] = None
    # Its splits are relevance judgements of queries over a corpus (profiled as ``qrels/<split>``).
    qrels_splits: ClassVar[bool] = False
    # Its evaluation ranks documents for queries, so a lexical ranker (BM25) can stand in.
    ranks_documents: ClassVar[bool] = False
    # The pairs its train split gives for fine-tuning (None: it cannot be trained on).
    pair_kind: ClassVar[PairKind | None] = None

    @property
    def main_score_name(self) -> str:
        return self.task_class.main_score_name

    def __repr__(self) -> str:
        return f"<task family {self.name}>"

    # --- data ----------------------------------------------------------------------------------

    @abstractmethod
    def build(self, tables: Tables, split: str, limit: int | None) -> Any:
        """The examples of ``split`` (the first ``limit`` items), read and validated through ``tables``."""

    @abstractmethod
    def item_count(self, examples: Any) -> int:
        """How many evaluated items (queries, pairs, test texts) the examples hold."""

    # --- texts ---------------------------------------------------------------------------------

    @abstractmethod
    def texts(self, examples: Any) -> dict[str | None, list[str]]:
        """The texts evaluation embeds, by role (None: no role; retrieval: "query", "document")."""

    def all_texts(self, examples: Any) -> list[str]:
        return [text for texts in self.texts(examples).values() for text in texts]

    def monitor_texts(self, examples: Any) -> tuple[list[str], str | None]:
        """(texts, role) monitor embeds as its reference: those of :attr:`monitor_role`."""
        return list(self.texts(examples).get(self.monitor_role, [])), self.monitor_role

    def timing_texts(self, examples: Any) -> tuple[list[str], list[str], str | None]:
        """(batch texts, single-query texts, role of the batch) for the efficiency measurements."""
        texts = self.all_texts(examples)
        return texts, texts, None

    def calibration_texts(self, examples: Any) -> list[str]:
        """The texts int8 ranges are calibrated on (the examples come from a non-evaluation split)."""
        return self.all_texts(examples)

    def fit_texts(self, data: TaskData) -> tuple[list[str], str]:
        """(texts, what they are) an unsupervised model (LSA) is fitted on: never a score or a label."""
        return list(dict.fromkeys(self.all_texts(data.examples))), f"{data.split} texts (no labels)"

    # --- evaluation ----------------------------------------------------------------------------

    def task(self, data: TaskData, cfg: EvaluationConfig) -> EvalTask:
        """The evaluation task of ``data``, validated against it and ``cfg``."""
        return self.task_class(data, cfg)

    @abstractmethod
    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        """The main score recomputed from the per-item table on each row of ``indices``.

        ``indices`` is a (resamples, items) matrix of row numbers of ``per_item``.
        """

    # --- training ------------------------------------------------------------------------------

    def pair_columns(self, examples: Any, *, pairs_per_class: int, seed: int) -> dict[str, list[Any]]:
        """The training pairs of :attr:`pair_kind` as columns (text columns first, score/label last)."""
        raise NotImplementedError(f"task family {self.name!r} declares no training pairs")

    def hold_out(self, examples: Any, split: Splitter) -> tuple[Any, Any] | None:
        """(train, validation) examples, the items split by ``split(count)``; None: no hold-out."""
        return None


def interleaved(first: list[str], second: list[str]) -> list[str]:
    """first[0], second[0], first[1], ...: the texts of sentence pairs, pair by pair."""
    return [text for pair in zip(first, second, strict=True) for text in pair]


def item_names(items: Sequence[Item]) -> list[str]:
    """How per-item tables show inputs: a text as itself, an image or audio item by its path as given."""
    return [item.source if isinstance(item, Media) else item for item in items]


def item_column(items: Sequence[Item]) -> str:
    """The per-item table's input column: "text", or the items' modality ("image", "audio")."""
    return items[0].modality if len(items) and isinstance(items[0], Media) else "text"
