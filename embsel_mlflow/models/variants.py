"""Variants of a transformer candidate: their names, their checks and ``select.variants`` expansion.

A variant is the candidate's ``ModelConfig`` with ``precision`` and ``variant.*`` set
(:class:`~embsel_mlflow.config.VariantConfig`). ``select.variants`` lists values per
axis; each candidate expands into its fp32 baseline plus one variant per listed value, one
axis at a time (``minilm/fp32``, ``minilm/bf16``, ``minilm/int8-emb``, ...). A quantization is
applied on every listed non-torch backend (``minilm/openvino-int8``), else on torch, except
``int8_static``, which only OpenVINO has. OpenVINO variants also run at each listed precision
(``minilm/openvino-bf16``, ``minilm/openvino-int8-bf16``: under int8, the layers it leaves,
such as attention and normalisation, run at that precision).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import Backend, EmbeddingDtype, ModelKind, Precision, Quantization
from embsel_mlflow.errors import ConfigError

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig

# The kinds with variants when the caller does not say (candidates/: ``CandidateKind.has_variants``)
TRANSFORMER_KINDS = (ModelKind.sentence_transformers.value, ModelKind.transformers.value)
BASELINE = "fp32"
AXES = ("precision", "backend", "quantization", "embedding_dtype", "truncate_dim")
_ENUMS: dict[str, Any] = {
    "precision": Precision,
    "backend": Backend,
    "quantization": Quantization,
    "embedding_dtype": EmbeddingDtype,
}
_SHORT_QUANTIZATION = {Quantization.int8_dynamic: "int8dyn", Quantization.int8_static: "int8"}


def is_default(cfg: ModelConfig) -> bool:
    """The plain fp32 torch model with float32 embeddings."""
    v = cfg.variant
    return (
        _stored_embeddings_only(cfg)
        and EmbeddingDtype(v.embedding_dtype) is EmbeddingDtype.float32
        and v.truncate_dim is None
    )


def network_baseline(cfg: ModelConfig) -> ModelConfig | None:
    """The plain fp32 torch config whose network ``cfg``'s is a cheaper run of (precision, backend
    or quantization differ), with the same stored format; None when ``cfg`` runs that network."""
    v = cfg.variant
    if (
        Precision(cfg.precision) is Precision.fp32
        and Backend(v.backend) is Backend.torch
        and Quantization(v.quantization) is Quantization.none
    ):
        return None
    base = copy.deepcopy(cfg)
    base.precision = Precision.fp32
    base.variant.backend, base.variant.quantization = Backend.torch, Quantization.none
    base.variant.embedding_dtype, base.variant.truncate_dim = EmbeddingDtype.float32, None
    return base


def variant_name(cfg: ModelConfig) -> str:
    """A short readable name: ``fp32``, ``bf16``, ``openvino-int8``, ``int8-emb``, ``trunc256``, ..."""
    v = cfg.variant
    parts = []
    if Backend(v.backend) is not Backend.torch:
        parts.append(Backend(v.backend).value)
    if Quantization(v.quantization) is not Quantization.none:
        parts.append(_SHORT_QUANTIZATION[Quantization(v.quantization)])
    if Precision(cfg.precision) is not Precision.fp32:
        parts.append(Precision(cfg.precision).value)
    if v.truncate_dim is not None:
        parts.append(f"trunc{v.truncate_dim}")
    if EmbeddingDtype(v.embedding_dtype) is not EmbeddingDtype.float32:
        parts.append(f"{EmbeddingDtype(v.embedding_dtype).value}-emb")
    return "-".join(parts) or BASELINE


def variant_tags(identity: dict[str, Any]) -> dict[str, str]:
    """Run tags of what a variant really ran and what calibrated it (empty for plain models)."""
    import json

    tags = {}
    model_side, stored = identity.get("variant") or {}, identity.get("stored_embeddings") or {}
    if model_side:
        tags["embsel.variant.runtime"] = json.dumps(model_side.get("runtime"), sort_keys=True)
    if stored:
        tags["embsel.variant.stored_embeddings"] = json.dumps(stored, sort_keys=True)
    calibration = model_side.get("calibration") or stored.get("calibration")
    if calibration:
        tags["embsel.variant.calibration"] = json.dumps(calibration, sort_keys=True)
    return tags


def _transformer_kind(cfg: ModelConfig) -> bool:
    return cfg.kind in TRANSFORMER_KINDS


def check_variant(cfg: ModelConfig, *, has_variants: bool | None = None, embeds: bool = True) -> None:
    """Refuse a variant of a candidate kind that has none (one line).

    ``has_variants``: whether ``cfg``'s kind has variants (None: a transformer kind's do).
    Stored-embedding variants (int8, binary, truncated vectors) only change what is done with
    the float output, so every kind that ``embeds`` has them (a static model's int8 corpus).
    """
    if is_default(cfg):
        return
    if embeds and _stored_embeddings_only(cfg):
        return
    if not (_transformer_kind(cfg) if has_variants is None else has_variants):
        raise ConfigError(
            f"model '{cfg.name}' ({cfg.kind}) has no variants: precision and model.variant "
            "apply to sentence_transformers and transformers candidates"
        )
    from embsel_mlflow.models.backends import check_backend

    check_backend(cfg)


def _stored_embeddings_only(cfg: ModelConfig) -> bool:
    """Only the stored embeddings differ from the plain model (the network runs as it is)."""
    v = cfg.variant
    return (
        Precision(cfg.precision) is Precision.fp32
        and Backend(v.backend) is Backend.torch
        and Quantization(v.quantization) is Quantization.none
    )


def expand_variants(
    candidates: Mapping[str, ModelConfig],
    axes: Any,
    has_variants: Callable[[ModelConfig], bool] = _transformer_kind,
) -> tuple[dict[str, ModelConfig], dict[str, str]]:
    """(variant name -> config, variant name -> its baseline's name) for ``select.variants``.

    Candidates of kinds without variants (``has_variants(cfg)`` false) stay as they are. An unknown
    axis or value is a one-line error; an invalid combination is not refused here but when its
    variant loads (a FAILED child).
    """
    if dataclasses.is_dataclass(axes) and not isinstance(axes, type):  # SelectConfig.variants
        axes = dataclasses.asdict(axes)
    axes = {key: _as_list(value) for key, value in dict(axes or {}).items() if _as_list(value)}
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise ConfigError(f"select.variants: unknown axis {', '.join(unknown)}; axes are {', '.join(AXES)}")
    if not axes:
        return dict(candidates), {}
    expanded: dict[str, ModelConfig] = {}
    baselines: dict[str, str] = {}
    for name, cfg in candidates.items():
        if not has_variants(cfg):
            expanded[name] = cfg
            continue
        base = f"{name}/{BASELINE}"
        for settings in _one_axis_at_a_time(axes):
            variant = _with(cfg, settings)
            label = base if not settings else f"{name}/{variant_name(variant)}"
            if label in expanded:
                continue
            expanded[label] = variant
            baselines[label] = base
    return expanded, baselines


def _one_axis_at_a_time(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The baseline ({}) then one settings dict per non-default value of each axis."""
    defaults: dict[str, Any] = {
        "precision": Precision.fp32.value,
        "backend": Backend.torch.value,
        "quantization": Quantization.none.value,
        "embedding_dtype": EmbeddingDtype.float32.value,
        "truncate_dim": None,
    }
    found: list[dict[str, Any]] = [{}]
    backends = [b for b in axes.get("backend", []) if b != Backend.torch.value]
    precisions = [p for p in map(_plain, axes.get("precision", [])) if p != Precision.fp32.value]
    for axis in AXES:
        for value in axes.get(axis, []):
            value = _plain(value)
            if value == defaults[axis]:
                continue
            if axis == "quantization":
                # static int8 exists only on OpenVINO: asked for alone, it means openvino-int8
                fallback = Backend.openvino.value if value == Quantization.int8_static.value else None
                for backend in backends or [fallback]:
                    found += _at_precisions(
                        {"quantization": value, **({"backend": backend} if backend else {})}, precisions
                    )
            else:
                found += _at_precisions({axis: value}, precisions)
    return found


def _at_precisions(settings: dict[str, Any], precisions: list[str]) -> list[dict[str, Any]]:
    """``settings``, and on OpenVINO the same at each listed precision (OpenVINO runs what int8
    leaves, such as attention and normalisation, at ``model.precision``)."""
    if settings.get("backend") != Backend.openvino.value:
        return [settings]
    return [settings, *({**settings, "precision": precision} for precision in precisions)]


def _with(cfg: ModelConfig, settings: dict[str, Any]) -> ModelConfig:
    variant = copy.deepcopy(cfg)
    for key, value in settings.items():
        try:
            if key == "precision":
                variant.precision = Precision(value)
            elif key == "truncate_dim":
                variant.variant.truncate_dim = None if value is None else int(value)
            else:
                setattr(variant.variant, key, _ENUMS[key](value))
        except ValueError as err:
            choices = _ENUMS.get(key)
            allowed = ", ".join(c.value for c in choices) if choices else "an integer or null"
            raise ConfigError(f"select.variants.{key}: '{value}' is not one of {allowed}") from err
    return variant


def _as_list(value: Any) -> list[Any]:
    value = _plain(value)
    return list(value) if isinstance(value, list | tuple) else [value]


def _plain(value: Any) -> Any:
    if hasattr(value, "_content"):  # an OmegaConf node
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return getattr(value, "value", value)
