"""A model's identity: everything that changes the embeddings it returns.

One dict used for provenance (run tags, MLflow's model entity) and as the model part of an
embedding-cache key, so the two can never disagree about "the same model".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.resolve import ResolvedModel

# Identity keys that name a model without changing its embeddings: left out of cache keys so
# that renaming a config, or the same weights found at another path, reuse cached embeddings.
_NOT_IN_CACHE_KEY = ("name", "name_or_path", "source", "origin")


def model_identity(cfg: ModelConfig, source: ResolvedModel, settings: Any = None) -> dict[str, Any]:
    """Name, weights (sha256 or hub revision), pooling, prompts, length, precision and kind settings.

    ``settings``: the kind's own section of the config (``cfg.static``, ``cfg.lsa``, ...), which
    the model of that kind passes; kept under the kind's name, without ``dir`` (where a
    distilled model is kept does not change it). Never the API key (only its env var's name).
    """
    kind = str(getattr(cfg.kind, "value", cfg.kind))
    identity = {
        "name": cfg.name,
        "name_or_path": cfg.name_or_path,
        "source": source.path_or_id,
        "origin": source.origin,
        "revision": cfg.revision,
        "sha256": source.sha256,
        "kind": kind,
        "pooling": _plain(cfg.pooling),
        "normalize": cfg.normalize,
        "max_seq_length": cfg.max_seq_length,
        "precision": _plain(cfg.precision),
        "query_prompt": cfg.query_prompt,
        "document_prompt": cfg.document_prompt,
        "symmetric_prompt": cfg.symmetric_prompt,
    }
    if settings is not None:
        section = _plain(settings)
        section.pop("dir", None)
        identity[kind] = section
    return identity


def cache_key(identity: dict[str, Any]) -> str:
    """Hex sha256 of the identity fields that change embeddings (stable across names and paths)."""
    keyed = {key: value for key, value in identity.items() if key not in _NOT_IN_CACHE_KEY}
    if keyed.get("sha256") is None and keyed.get("revision") is None:
        # Neither weights hash nor pinned revision: the source is all that tells models apart.
        keyed["source"] = identity.get("source")
    text = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """Enums as their value, dataclasses and OmegaConf nodes as plain dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(value, "_content"):  # an OmegaConf DictConfig
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return getattr(value, "value", value)
