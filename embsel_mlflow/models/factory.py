"""One entry point from a model config to a ready candidate, whatever its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embsel_mlflow.config.schema import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import ModelConfig
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.models.cache import EmbeddingCache


def build_encoder(cfg: ModelConfig, *, cache: EmbeddingCache | None = None) -> EmbeddingModel:
    """Load (or distil, or prepare to fit) the candidate ``cfg`` describes.

    With a ``cache``, its ``encode`` answers from the embedding cache and encodes only misses
    (BM25 ranks without embeddings and is never cached). Call ``for_dataset(data)`` on the
    result before evaluating it: LSA fits there, and BM25 refuses non-retrieval tasks there.
    """
    kind = ModelKind(cfg.kind)
    model: EmbeddingModel
    if kind is ModelKind.from_run:
        cfg = _logged_model_config(cfg, cache)
        kind = ModelKind.sentence_transformers
    if kind in (ModelKind.sentence_transformers, ModelKind.transformers):
        from embsel_mlflow.models.encoder import load_encoder

        model = load_encoder(cfg)
    elif kind is ModelKind.static:
        from embsel_mlflow.models.static import load_static

        model = load_static(cfg, models_dir=cache.models_dir if cache is not None else None)
    elif kind is ModelKind.lsa:
        from embsel_mlflow.models.lsa import LsaModel

        model = LsaModel(cfg, models_dir=cache.models_dir if cache is not None else None)
    elif kind is ModelKind.bm25:
        from embsel_mlflow.models.bm25 import Bm25Ranker

        return Bm25Ranker(cfg)
    elif kind is ModelKind.openai_api:
        from embsel_mlflow.models.openai_api import ApiEncoder

        model = ApiEncoder(cfg)
    else:  # pragma: no cover - ModelKind() has already refused unknown kinds
        raise AssertionError(kind)
    if cache is None:
        return model
    from embsel_mlflow.models.cache import CachedEncoder

    return CachedEncoder(model, cache)


def _logged_model_config(cfg: ModelConfig, cache: EmbeddingCache | None) -> ModelConfig:
    """A from_run candidate as the sentence-transformers directory its run logged (downloaded once).

    Prompts and normalisation not set in ``cfg`` come from the logged model's settings. The
    download goes through the tracking layer (this module imports no MLflow itself).
    """
    import dataclasses
    import tempfile
    from pathlib import Path

    from embsel_mlflow.errors import ConfigError
    from embsel_mlflow.tracking.embedding_model import fetch_logged_model

    if not cfg.run_id:
        raise ConfigError("model=from_run needs model.run_id=<id of a train run that logged a model>")
    root = (
        cache.models_dir / "from_run" if cache is not None else Path(tempfile.mkdtemp(prefix="embsel-run-"))
    )
    weights, settings = fetch_logged_model(cfg.run_id, root)
    if settings.get("backend") != "sentence_transformers":
        raise ConfigError(
            f"run {cfg.run_id} logged a {settings.get('backend')} model; from_run loads transformers"
        )
    prompts = settings.get("prompts", {})
    return dataclasses.replace(
        cfg,
        kind=ModelKind.sentence_transformers,
        name_or_path=str(weights),
        offline=None,
        revision=None,
        query_prompt=cfg.query_prompt or prompts.get("query"),
        document_prompt=cfg.document_prompt or prompts.get("document"),
        symmetric_prompt=cfg.symmetric_prompt or prompts.get("symmetric"),
        normalize=cfg.normalize or bool(settings.get("normalize")),
    )
