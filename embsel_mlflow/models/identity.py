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
_NOT_IN_CACHE_KEY = ("name", "name_or_path", "source", "origin", "display_name")
# Kinds that derive a model of another kind from ``name_or_path`` (a distilled table, ...):
# their display name says so, so it never reads as the transformer it came from.
_DERIVED_KINDS = ("static",)
_FINE_TUNED = "fine_tuned_in_run"
RUN_ID_CHARS = 8  # a run id prefix that tells runs apart in a name


def model_identity(cfg: ModelConfig, source: ResolvedModel, settings: Any = None) -> dict[str, Any]:
    """Name, weights (sha256 or hub revision), pooling, prompts, length, precision and kind settings.

    ``settings``: the kind's own section of the config (``cfg.static``, ``cfg.lsa``, ...), which
    the model of that kind passes; kept under the kind's name, without ``dir`` (where a
    distilled model is kept does not change it). Never the API key (only its env var's name).
    """
    kind = str(getattr(cfg.kind, "value", cfg.kind))
    identity = {
        "display_name": config_display_name(cfg),
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
        "precision": _plain(cfg.precision) if cfg.precision != "auto" else _resolved_precision(cfg),
        "query_prompt": cfg.query_prompt,
        "document_prompt": cfg.document_prompt,
        "symmetric_prompt": cfg.symmetric_prompt,
    }
    if settings is not None:
        section = _plain(settings)
        section.pop("dir", None)
        identity[kind] = section
    return identity


def _resolved_precision(cfg: ModelConfig) -> str:
    """``auto`` as this machine resolves it, so it shares cache entries with the explicit setting."""
    from embsel_mlflow.models.device import resolve_precision

    return resolve_precision(cfg).value


def short_name(name_or_path: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``; ``/models/bert/`` -> ``bert``."""
    return name_or_path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or name_or_path


def config_display_name(cfg: Any) -> str:
    """What a model config names, as a person reads it: ``all-MiniLM-L6-v2``,
    ``static:all-MiniLM-L6-v2`` (distilled from it), ``all-MiniLM-L6-v2/bf16`` (a variant),
    ``ft(<run id prefix>)`` (a from_run model).

    ``cfg``: a ``ModelConfig`` or its composed (OmegaConf) node; a node too broken to read
    (preflight reports it) is named by its ``name_or_path`` alone.
    """
    from embsel_mlflow.models.variants import is_default, variant_name

    try:
        base = short_name(str(getattr(cfg, "name_or_path", None) or getattr(cfg, "name", None) or "model"))
    except Exception:  # a missing mandatory value in a composed node
        return "model"
    try:
        kind = str(getattr(cfg.kind, "value", cfg.kind))
        run_id = getattr(cfg, "run_id", None)
        if kind == "from_run" or (run_id and base == "weights"):  # a logged model, named by its run
            return fine_tuned_name(None, str(run_id or "?"))
        static = getattr(cfg, "static", None)
        if kind in _DERIVED_KINDS and (static is None or static.distill):
            base = f"{kind}:{base}"
        if getattr(cfg, "variant", None) is not None and not is_default(cfg):
            base = f"{base}/{variant_name(cfg)}"
    except Exception:
        return base
    return base


def fine_tuned_name(base: str | None, run_id: str) -> str:
    """``all-MiniLM-L6-v2+ft(1a2b3c4d)``: ``base`` fine-tuned in run ``run_id``."""
    suffix = f"ft({run_id[:RUN_ID_CHARS]})"
    return f"{base}+{suffix}" if base else suffix


def display_name(identity: dict[str, Any]) -> str:
    """The name of the model ``identity`` describes (a fine-tuned model: its base's, +ft(run))."""
    base = identity.get("display_name") or short_name(str(identity.get("name_or_path") or "model"))
    run_id = identity.get(_FINE_TUNED)
    return fine_tuned_name(str(base), str(run_id)) if run_id else str(base)


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
