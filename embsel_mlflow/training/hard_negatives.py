"""Hard negatives for (anchor, positive) pairs, mined with the base model (``mine_hard_negatives``).

The embeddings come through the candidate's own ``encode`` (its role prompts and its embedding
cache: the query and document embeddings ``evaluate`` computed for the same model are reused);
sentence-transformers only ranks them, with the model's similarity function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.families import family_of
from embsel_mlflow.training.pairs import PairKind, TrainPairs

if TYPE_CHECKING:
    import numpy as np

    from embsel_mlflow.config import HardNegativesConfig
    from embsel_mlflow.data.task_data import TaskData


class EncoderAsModel:
    """What ``mine_hard_negatives`` asks of its model, with the embeddings from ``encoder.encode``.

    Anchors are encoded in the query role and candidates in the document role, L2-normalised as
    ``mine_hard_negatives`` asks; everything else (device, similarity) is the SentenceTransformer's.
    """

    def __init__(self, encoder: Any, model: Any) -> None:
        self._encoder = encoder
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode_query(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        return self._encode(texts, "query")

    def encode_document(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        return self._encode(texts, "document")

    def _encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        from embsel_mlflow.models.base import l2_normalized

        return l2_normalized(self._encoder.encode(list(texts), role=role))


def add_hard_negatives(
    pairs: TrainPairs, encoder: Any, data: TaskData, cfg: HardNegativesConfig
) -> TrainPairs:
    """(anchor, positive, negative_1..n); the candidates: the retrieval corpus, else the positives.

    ``encoder`` is the base candidate as ``evaluate`` encodes with it: a ``models.encoder.Encoder``,
    or that encoder behind the embedding cache (``CachedEncoder``), whose hits it reuses.
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
    # the family's document texts (a retrieval corpus) are the candidates; else the positives
    corpus = family_of(data).texts(data.examples).get("document")
    mined = mine_hard_negatives(
        pairs.to_dataset(),
        # duck-typed (see EncoderAsModel): the candidate's embeddings, its SentenceTransformer's similarity
        EncoderAsModel(encoder, getattr(encoder, "inner", encoder).model),  # type: ignore[arg-type]
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=corpus,
        range_min=cfg.range_min,
        range_max=cfg.range_max,
        relative_margin=cfg.relative_margin,
        num_negatives=cfg.num_negatives,
        sampling_strategy=cfg.sampling_strategy,  # type: ignore[arg-type]  # checked above
        output_format="n-tuple",
        verbose=False,
    )
    return TrainPairs(PairKind.positive, mined.to_dict(), f"{pairs.source} + hard negatives")
