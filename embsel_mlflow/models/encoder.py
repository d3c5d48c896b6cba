"""Loading an embedding model and encoding texts with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config import ModelKind, Precision
from embsel_mlflow.config import Pooling as PoolingMode
from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.models.base import PretrainedCandidate, hub_snapshot, text_inputs, weights_num_parameters
from embsel_mlflow.models.device import resolve_device
from embsel_mlflow.models.exported_forward import torch_threads_for
from embsel_mlflow.models.hub_loading import checked_source, hub_load
from embsel_mlflow.models.resolve import HUB

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.media import Media
    from embsel_mlflow.models.calibration import CalibrationTexts
    from embsel_mlflow.models.resolve import ResolvedModel

ROLES = (None, "query", "document")
NOT_LOADED = "not loaded (every embedding came from the cache)"  # Encoder.device of an unused model


class Encoder(PretrainedCandidate):
    """A loaded embedding model: texts in, float32 embeddings out.

    A thin wrapper over a SentenceTransformer: encoding goes straight to ST's own
    ``encode``/``encode_query``/``encode_document`` so batching, truncation and prompt
    handling are exactly ST's (and as fast).
    """

    def __init__(
        self,
        model: SentenceTransformer | None,
        cfg: ModelConfig,
        source: ResolvedModel,
        *,
        variant: dict[str, Any] | None = None,
        load: Callable[[], SentenceTransformer] | None = None,
    ) -> None:
        """``model``, or None and ``load``: the model is loaded on first use (a warm run whose
        embeddings are all cached never loads it, nor imports sentence-transformers)."""
        if model is None and load is None:
            raise TypeError("Encoder needs a model or a way to load it")
        self._cfg = cfg
        self._source = source
        # The model-side variant (backend, quantization, what really ran); None for plain torch.
        self._variant = variant
        self._load = load
        self._model: SentenceTransformer | None = None
        self._device: str | None = None  # resolved without loading (resolve_device)
        self._normalize = cfg.normalize
        self._encode_fns: dict[str | None, Callable[..., Any]] = {}
        if model is not None:
            self._attach(model)

    def _attach(self, model: SentenceTransformer) -> None:
        from sentence_transformers.sentence_transformer.modules import Normalize

        self._model = model
        # A model that ends in a Normalize module already returns unit vectors.
        self._normalize = self._cfg.normalize and not isinstance(model[-1], Normalize)
        self._encode_fns = {
            None: model.encode,
            "query": model.encode_query,
            "document": model.encode_document,
        }

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (a lazily built encoder loads it on first use)."""
        return self._model is not None

    def encode(
        self,
        texts: Sequence[str | Media],
        *,
        role: str | None = None,
        show_progress: bool = False,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` as a float32 array of shape (len(texts), embedding_dim).

        ``role`` ("query" or "document") prepends ``model.query_prompt`` / ``model.document_prompt``;
        when that is unset, the model's own saved prompt for the role (if any) applies, as in ST.
        Without a role (symmetric tasks) ``model.symmetric_prompt`` applies.
        """
        if isinstance(texts, str):
            raise TypeError("Encoder.encode() takes a sequence of texts, not a single string")
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        texts = text_inputs(texts, self._cfg.name)
        if len(texts) == 0:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        encode = self._encode_fn(role)
        with torch_threads_for((self._variant or {}).get("backend")):
            embeddings = encode(
                texts,
                prompt=self._configured_prompt(role),
                batch_size=batch_size or self._cfg.batch_size,
                show_progress_bar=show_progress,
                normalize_embeddings=self._normalize,
                convert_to_numpy=True,
            )
        return np.asarray(embeddings, dtype=np.float32)  # no copy when already float32 (fp32 models)

    def _encode_fn(self, role: str | None) -> Callable[..., Any]:
        """ST's encode function for ``role`` (the model loaded now when built lazily)."""
        self._ensure_loaded()
        return self._encode_fns[role]

    def prompt(self, role: str | None) -> str | None:
        """The prompt text ``encode(role=role)`` prepends (for provenance), or None."""
        configured = self._configured_prompt(role)
        if configured is not None or role is None:
            return configured
        return self.model.prompts.get(role)

    def _configured_prompt(self, role: str | None) -> str | None:
        prompts = {
            None: self._cfg.symmetric_prompt,
            "query": self._cfg.query_prompt,
            "document": self._cfg.document_prompt,
        }
        return prompts[role]

    @property
    def embedding_dim(self) -> int:
        dim = self.model.get_embedding_dimension()
        if dim is None:  # no module reports a dimension: int(None) used to fail here anyway
            raise ModelError(f"model '{self._cfg.name}' does not report its embedding dimension")
        return int(dim)

    @property
    def num_parameters(self) -> int:
        if self._model is None:  # counted from the weight files' headers, not loaded for it
            counted = weights_num_parameters(self._source)
            if counted is not None:
                return counted
        return sum(p.numel() for p in self.model.parameters())

    @property
    def max_seq_length(self) -> int | None:
        return self.model.max_seq_length

    @property
    def device(self) -> str:
        """Where the model runs; ``NOT_LOADED`` when it was never needed (every embedding cached)
        and :meth:`resolve_device` was not asked."""
        if self._model is not None:
            return str(self._model.device)
        return self._device or NOT_LOADED

    def resolve_device(self) -> str:
        """The device the model runs, or would run, on, without loading it (torch is imported):
        what a stored efficiency measurement of it is keyed by."""
        if self._model is None and self._device is None:
            device = resolve_device(self._cfg.device)
            self._device = "cuda:0" if device == "cuda" else device  # as a model placed there reports it
        return self.device

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def model(self) -> SentenceTransformer:
        """The underlying SentenceTransformer (e.g. for fine-tuning), loaded now if it is not yet."""
        return self._ensure_loaded()

    def _ensure_loaded(self) -> SentenceTransformer:
        if self._model is None:
            assert self._load is not None  # __init__ refuses neither a model nor a loader
            self._attach(self._load())
        assert self._model is not None
        return self._model

    @property
    def source(self) -> ResolvedModel:
        return self._source

    @property
    def config(self) -> ModelConfig:
        return self._cfg

    @property
    def identity(self) -> dict[str, Any]:
        """What changes this model's embeddings (see :func:`model_identity`)."""
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self._source)
        if self._variant is not None:
            identity["variant"] = self._variant
        return identity

    @property
    def disk_size_bytes(self) -> int | None:
        """The weight files; for a bf16/int8/OpenVINO variant, the size it takes saved as it runs."""
        if self._variant is None and Precision(self._cfg.precision) is Precision.fp32:
            return super().disk_size_bytes
        runtime = (self._variant or {}).get("runtime", {})
        if runtime.get("ir_bytes"):
            return int(runtime["ir_bytes"])
        import io

        import torch

        buffer = io.BytesIO()
        transformer: Any = self.model[0]
        torch.save(transformer.model.state_dict(), buffer)
        return buffer.getbuffer().nbytes


# Models whose position ids start after the padding index (position = pad_token_id + 1 + i).
_OFFSET_POSITION_MODELS = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "ibert"}


def check_model_config(cfg: ModelConfig) -> None:
    """Refuse settings no model can run with, before anything is loaded."""
    if cfg.batch_size < 1:
        raise ConfigError(f"model.batch_size must be >= 1, got {cfg.batch_size}; e.g. model.batch_size=32")
    if cfg.max_seq_length is not None and cfg.max_seq_length < 1:
        raise ConfigError(
            f"model.max_seq_length must be >= 1 (tokens) or null for the model's own limit, "
            f"got {cfg.max_seq_length}"
        )


def position_limit(model: SentenceTransformer) -> int | None:
    """The most tokens the model's position embeddings cover, or None when it has no fixed limit."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    if config is None:
        return None
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITION_MODELS:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


def load_encoder(
    cfg: ModelConfig,
    *,
    calibration: CalibrationTexts | None = None,
    models_dir: Path | None = None,
    lazy: bool = False,
) -> Encoder:
    """Resolve, load and configure the model described by ``cfg``, switched to its variant's backend.

    ``calibration`` calibrates int8_static quantization; exported backends are kept under ``models_dir``.
    ``lazy``: a plain torch model (no backend or quantization variant) is resolved and named now
    but loaded on first use, so a run answered from the embedding cache never loads it.
    """
    from embsel_mlflow.models.backends import model_variant_identity
    from embsel_mlflow.models.variants import check_variant

    check_model_config(cfg)
    check_variant(cfg)
    if lazy and model_variant_identity(cfg, calibration) is None:
        source = checked_source(cfg)
        # A Hub model not downloaded yet is loaded now: its download (or the offline error) up front.
        if source.origin != HUB or hub_snapshot(source.path_or_id) is not None:
            return Encoder(None, cfg, source, load=partial(_loaded_model, cfg))
    model, source = _load_model(cfg)
    return Encoder(model, cfg, source, variant=_apply_variant(model, cfg, source, calibration, models_dir))


def _loaded_model(cfg: ModelConfig) -> SentenceTransformer:
    """The model a lazily built Encoder loads (a module-level function: the Encoder pickles)."""
    return _load_model(cfg)[0]


def _load_model(cfg: ModelConfig) -> tuple[SentenceTransformer, ResolvedModel]:
    """The SentenceTransformer ``cfg`` describes, on its device, limited to ``model.max_seq_length``."""
    load = hub_load(cfg)
    source = load.source
    device = resolve_device(cfg.device)
    with load.loading():
        model = _build_model(cfg, source, device, load.kwargs)
    if cfg.max_seq_length is not None:
        limit = position_limit(model)
        if limit is not None and cfg.max_seq_length > limit:
            raise ConfigError(
                f"model.max_seq_length={cfg.max_seq_length} exceeds the {limit} positions model "
                f"'{cfg.name}' has; set model.max_seq_length to at most {limit}, or null for the model's own"
            )
        model.max_seq_length = cfg.max_seq_length
    return model, source


def _apply_variant(
    model: SentenceTransformer,
    cfg: ModelConfig,
    source: ResolvedModel,
    calibration: CalibrationTexts | None,
    models_dir: Path | None,
) -> dict[str, Any] | None:
    """Run the model on its variant's backend; the variant's identity (None for plain torch)."""
    from embsel_mlflow.models.backends import apply_backend, backend_key, model_variant_identity
    from embsel_mlflow.models.identity import model_identity

    variant = model_variant_identity(cfg, calibration)
    if variant is None:
        return None
    key = backend_key({**model_identity(cfg, source), "variant": variant})
    runtime = apply_backend(model, cfg, calibration=calibration, models_dir=models_dir, key=key)
    return {**variant, "runtime": runtime}


def _build_model(
    cfg: ModelConfig, source: ResolvedModel, device: str, hub_kwargs: dict[str, Any]
) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    model_kwargs = _model_kwargs(cfg)
    if cfg.kind == ModelKind.sentence_transformers:
        return SentenceTransformer(source.path_or_id, device=device, model_kwargs=model_kwargs, **hub_kwargs)

    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(
        source.path_or_id,
        model_kwargs={**hub_kwargs, **model_kwargs},
        processor_kwargs=dict(hub_kwargs),
        config_kwargs=dict(hub_kwargs),
    )
    modules = [
        transformer,
        Pooling(transformer.get_embedding_dimension(), pooling_mode=PoolingMode(cfg.pooling).value),
    ]
    if cfg.normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device=device)


def _model_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    """transformers ``from_pretrained`` kwargs: dtype from ``precision``, safetensors only.

    ``use_safetensors=True`` refuses pickled ``.bin`` weights (unpickling can run code);
    ``model.model_kwargs`` overrides either default.
    """
    import torch

    dtypes = {Precision.fp32: torch.float32, Precision.fp16: torch.float16, Precision.bf16: torch.bfloat16}
    defaults: dict[str, Any] = {"use_safetensors": True}
    from embsel_mlflow.models.device import resolve_precision

    # OpenVINO converts the fp32 weights and runs them at model.precision (its own hint)
    precision = Precision.fp32 if cfg.variant.backend == "openvino" else resolve_precision(cfg)
    if not {"dtype", "torch_dtype"} & set(cfg.model_kwargs):
        defaults["dtype"] = dtypes[precision]
    return {**defaults, **cfg.model_kwargs}
