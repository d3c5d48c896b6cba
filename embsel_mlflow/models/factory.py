"""One entry point from a model config to a ready candidate, whatever its kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from embsel_mlflow.config.schema import ModelKind

if TYPE_CHECKING:
    from embsel_mlflow.config.schema import DataConfig, ModelConfig
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.models.cache import EmbeddingCache
    from embsel_mlflow.models.calibration import CalibrationTexts


def build_encoder(
    cfg: ModelConfig,
    *,
    cache: EmbeddingCache | None = None,
    calibration_data: Sequence[DataConfig] = (),
    tracking_uri: str | None = None,
) -> EmbeddingModel:
    """Load (or distil, or prepare to fit) the candidate ``cfg`` describes, as its variant.

    With a ``cache``, its ``encode`` answers from the embedding cache and encodes only misses
    (BM25 ranks without embeddings and is never cached). Call ``for_dataset(data)`` on the
    result before evaluating it: LSA fits there, and BM25 refuses non-retrieval tasks there.
    ``calibration_data``: the datasets whose calibration split calibrates int8 variants.
    ``tracking_uri``: the store a from_run model's run is in (None: $MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db), i.e. the job's ``tracking.uri``.
    """
    from embsel_mlflow.models.variants import check_variant

    check_variant(cfg)  # an invalid variant is refused before anything is loaded
    calibration = _calibration(cfg, calibration_data)
    kind = ModelKind(cfg.kind)
    model: EmbeddingModel
    if kind is ModelKind.from_run:
        cfg = _logged_model_config(cfg, cache, tracking_uri)
        kind = ModelKind.sentence_transformers
    if kind in (ModelKind.sentence_transformers, ModelKind.transformers):
        from embsel_mlflow.models.encoder import load_encoder

        model = load_encoder(
            cfg, calibration=calibration, models_dir=cache.models_dir if cache is not None else None
        )
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
    if cache is not None:
        from embsel_mlflow.models.cache import CachedEncoder

        model = CachedEncoder(model, cache)
    return _stored_as(model, cfg, calibration)


def _calibration(cfg: ModelConfig, datasets: Sequence[DataConfig]) -> CalibrationTexts | None:
    """Calibration texts when the variant needs int8 ranges (the evaluation split is refused first)."""
    from embsel_mlflow.config.schema import EmbeddingDtype, Quantization
    from embsel_mlflow.models.calibration import calibration_texts

    variant = cfg.variant
    dtype = EmbeddingDtype(variant.embedding_dtype)
    needed = Quantization(variant.quantization) is Quantization.int8_static or dtype is EmbeddingDtype.int8
    needed = needed or (dtype is EmbeddingDtype.binary and variant.rescore_multiplier > 0)
    if not needed:
        return None
    return calibration_texts(variant.calibration, datasets)


def _stored_as(
    model: EmbeddingModel, cfg: ModelConfig, calibration: CalibrationTexts | None
) -> EmbeddingModel:
    """``model`` storing truncated / int8 / binary embeddings when its variant asks for it."""
    from embsel_mlflow.models.stored_embeddings import StoredEmbeddingEncoder, embedding_format

    fmt = embedding_format(cfg.variant, model.embedding_dim, calibration, model.encode)
    return model if fmt is None else StoredEmbeddingEncoder(model, fmt)


def _logged_model_config(
    cfg: ModelConfig, cache: EmbeddingCache | None, tracking_uri: str | None
) -> ModelConfig:
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
    weights, settings = fetch_logged_model(cfg.run_id, root, tracking_uri=tracking_uri)
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
