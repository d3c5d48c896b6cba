"""Hard negatives for (anchor, positive) pairs, mined with the base model (``mine_hard_negatives``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.families.retrieval import RetrievalExamples
from embsel_mlflow.training.pairs import PairKind, TrainPairs

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import HardNegativesConfig
    from embsel_mlflow.data.task_data import TaskData


def add_hard_negatives(
    pairs: TrainPairs, encoder: Any, data: TaskData, cfg: HardNegativesConfig
) -> TrainPairs:
    """(anchor, positive, negative_1..n); the candidates: the retrieval corpus, else the positives.

    ``encoder`` is the base candidate (``models.encoder.Encoder``): its model and role prompts mine.
    """
    from sentence_transformers.util import mine_hard_negatives

    if pairs.kind is not PairKind.positive:
        raise ConfigError(
            f"train.hard_negatives needs (anchor, positive) pairs; {pairs.source} gives "
            f"{pairs.kind.value} pairs: "
            "set train.hard_negatives.enabled=false"
        )
    if cfg.sampling_strategy not in ("top", "random"):
        raise ConfigError(
            f"train.hard_negatives.sampling_strategy={cfg.sampling_strategy!r} is unknown; use top or random"
        )
    corpus = list(data.examples.corpus.values()) if isinstance(data.examples, RetrievalExamples) else None
    mined = mine_hard_negatives(
        pairs.to_dataset(),
        encoder.model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=corpus,
        range_min=cfg.range_min,
        range_max=cfg.range_max,
        relative_margin=cfg.relative_margin,
        num_negatives=cfg.num_negatives,
        sampling_strategy=cfg.sampling_strategy,  # type: ignore[arg-type]  # checked above
        query_prompt=encoder.prompt("query"),
        corpus_prompt=encoder.prompt("document"),
        batch_size=cfg.batch_size,
        output_format="n-tuple",
        verbose=False,
    )
    return TrainPairs(PairKind.positive, mined.to_dict(), f"{pairs.source} + hard negatives")
