"""Candidate kinds: one registered object per ``model.kind``, and the one way to build a candidate.

A :class:`CandidateKind` says how to build its model from a :class:`ModelConfig` (the model
implementations live in ``embsel_mlflow.models``) and what the steps may do with it (flags).
``model.kind`` is a plain string, looked up here (:func:`get_kind`), so a kind registered by a
plug-in or a test (:func:`register_kind`) is a candidate like the built-ins, which register
themselves in this package's modules (one per kind).

A model's identity (what keys the embedding cache and the logged-model link) belongs to the
model object: its ``identity`` property, built with ``models.identity.model_identity(cfg, source,
settings)`` where ``settings`` is the kind's own config section, if any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from embsel_mlflow.config import DataConfig, ModelConfig
    from embsel_mlflow.models.base import EmbeddingModel
    from embsel_mlflow.models.cache import EmbeddingCache
    from embsel_mlflow.models.calibration import CalibrationTexts


@dataclass(frozen=True)
class BuildContext:
    """What building a candidate may use besides its config."""

    cache: EmbeddingCache | None = None  # the embedding cache (its models_dir keeps exports, distillations)
    calibration: CalibrationTexts | None = None  # texts that calibrate int8 variants (None: not needed)
    tracking_uri: str | None = None  # the job's tracking.uri (a from_run model's store)

    @property
    def models_dir(self) -> Path | None:
        """Where derived models (distilled, exported, downloaded) are kept; None: a temporary place."""
        return self.cache.models_dir if self.cache is not None else None


class CandidateKind:
    """One candidate kind (``model.kind``): how its model is built and what the steps may do with it.

    Subclass it, set ``name`` and the flags that hold, implement :meth:`build`, then
    :func:`register_kind` an instance. The flags' defaults describe a plain embedding model that
    is neither logged, trained, fitted nor varied.
    """

    name: str = ""  # the value of model.kind
    # Can be logged and registered as an embedding model (select.register, train) and monitored;
    # its model says so too (``registrable``), which is what logging checks.
    registrable: bool = False
    trainable: bool = False  # select.finetune_top_k and `embsel train` can fine-tune it
    fitted_per_dataset: bool = False  # ``for_dataset`` fits it on the task's own texts (LSA)
    retrieval_only: bool = False  # scores queries against documents only: retrieval tasks (BM25)
    # False: a ranker without embeddings (``rank``): never cached, no stored-embedding format
    embeds: bool = True
    has_variants: bool = False  # precision, backend, quantization and stored-embedding variants
    tokenized: bool = False  # its texts go through a tokenizer that profile can count tokens with
    # What its encode() takes (media.TEXT, IMAGE, AUDIO): the modality guard routes on it, so a
    # text model is refused on an image column with the kinds that fit named.
    modalities: frozenset[str] = frozenset({"text"})

    def build(self, cfg: ModelConfig, context: BuildContext) -> EmbeddingModel:
        """The model ``cfg`` describes (the embedding cache and stored formats are added by the caller)."""
        raise NotImplementedError

    def modalities_of(self, cfg: ModelConfig, context: BuildContext) -> frozenset[str]:
        """What the candidate ``cfg`` embeds (the modality guard asks): this kind's ``modalities``.

        A kind that loads a model of another kind (``from_run``) answers with that model's.
        """
        return self.modalities

    def __repr__(self) -> str:
        return f"<candidate kind {self.name}>"


KINDS: dict[str, CandidateKind] = {}  # model.kind -> its kind, in registration order


def register_kind(kind: CandidateKind) -> CandidateKind:
    """Make ``kind`` available as ``model.kind=<kind.name>`` (replacing a kind of that name)."""
    if not isinstance(kind, CandidateKind) or not kind.name:
        raise TypeError(f"register a named CandidateKind instance, got {kind!r}")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: Any, *, model: str | None = None) -> CandidateKind:
    """The registered kind called ``name``; a one-line ConfigError naming the known kinds if none."""
    key = str(getattr(name, "value", name))
    kind = KINDS.get(key)
    if kind is None:
        where = f" for model '{model}'" if model else ""
        raise ConfigError(f"unknown model kind '{key}'{where}: use one of {', '.join(KINDS)}")
    return kind


def check_kinds(config: Any) -> None:
    """Refuse (one line) the first model config inside ``config`` (a typed job config, a mapping
    of candidates, a ModelConfig) whose ``kind`` is not registered."""
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.config.walk import nodes_of

    for model in nodes_of(config, ModelConfig):
        get_kind(model.kind, model=model.name)


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

    kind = get_kind(cfg.kind, model=cfg.name)
    check_variant(cfg, has_variants=kind.has_variants, embeds=kind.embeds)  # refused before loading
    calibration = _calibration(cfg, calibration_data)
    model = kind.build(cfg, BuildContext(cache, calibration, tracking_uri))
    if not kind.embeds:
        return model
    if cache is not None:
        from embsel_mlflow.models.cache import CachedEncoder

        model = CachedEncoder(model, cache)
    return _stored_as(model, cfg, calibration)


def _calibration(cfg: ModelConfig, datasets: Sequence[DataConfig]) -> CalibrationTexts | None:
    """Calibration texts when the variant needs int8 ranges (the evaluation split is refused first)."""
    from embsel_mlflow.config import EmbeddingDtype, Quantization
    from embsel_mlflow.models.calibration import calibration_texts

    variant = cfg.variant
    dtype = EmbeddingDtype(variant.embedding_dtype)
    needed = Quantization(variant.quantization) is Quantization.int8_static or dtype is EmbeddingDtype.int8
    needed = needed or (dtype is EmbeddingDtype.binary and variant.rescore_multiplier > 0)
    if not needed:
        return None
    from embsel_mlflow.families.loading import load_task_data

    return calibration_texts(variant.calibration, datasets, load=load_task_data)


def _stored_as(
    model: EmbeddingModel, cfg: ModelConfig, calibration: CalibrationTexts | None
) -> EmbeddingModel:
    """``model`` storing truncated / int8 / binary embeddings when its variant asks for it."""
    from embsel_mlflow.config import EmbeddingDtype

    variant = cfg.variant
    if EmbeddingDtype(variant.embedding_dtype) is EmbeddingDtype.float32 and variant.truncate_dim is None:
        return model  # plain float32: no need to ask the dimension (which would load a lazy model)

    from embsel_mlflow.evaluation.quantized_search import QuantizedTopK
    from embsel_mlflow.models.stored_embeddings import StoredEmbeddingEncoder, embedding_format

    fmt = embedding_format(variant, model.embedding_dim, calibration, model.encode)
    return model if fmt is None else StoredEmbeddingEncoder(model, fmt, QuantizedTopK)
