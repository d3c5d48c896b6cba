"""A model's identity: everything that changes the embeddings it returns.

One dict used for provenance (run tags, MLflow's model entity) and as the model part of an
embedding-cache key, so the two can never disagree about "the same model".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import ModelConfig
    from embsel_mlflow.models.resolve import ResolvedModel


def model_identity(cfg: ModelConfig, source: ResolvedModel) -> dict[str, Any]:
    """Name, weights (sha256 or hub revision), pooling, prompts, length and precision of a model."""

    def text(value: Any) -> Any:
        return getattr(value, "value", value)  # enums as their plain value

    return {
        "name": cfg.name,
        "name_or_path": cfg.name_or_path,
        "source": source.path_or_id,
        "origin": source.origin,
        "revision": cfg.revision,
        "sha256": source.sha256,
        "kind": text(cfg.kind),
        "pooling": text(cfg.pooling),
        "normalize": cfg.normalize,
        "max_seq_length": cfg.max_seq_length,
        "precision": text(cfg.precision),
        "query_prompt": cfg.query_prompt,
        "document_prompt": cfg.document_prompt,
        "symmetric_prompt": cfg.symmetric_prompt,
    }
