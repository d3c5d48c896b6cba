"""A CLAP audio-text dual encoder (transformers ``ClapModel``), loaded from a local directory or the Hub."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import Precision
from embsel_mlflow.config.model import ClapSettings
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.media.items import AUDIO, TEXT
from embsel_mlflow.models.audio_inputs import AudioForwardModel, serving_settings
from embsel_mlflow.models.base import PretrainedCandidate
from embsel_mlflow.models.clap_forward import ClapForward
from embsel_mlflow.models.resolve import HUB, ResolvedModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig

TRUNCATIONS = ("rand_trunc", "fusion")


class ClapEncoder(AudioForwardModel[ClapForward], PretrainedCandidate):
    """Texts through ``get_text_features``, 48 kHz mono clips through ``get_audio_features``."""

    modalities = frozenset({TEXT, AUDIO})

    def __init__(self, cfg: ModelConfig, forward: ClapForward, source: ResolvedModel) -> None:
        self._cfg = cfg
        self._forward = forward
        self._source = source

    @property
    def forward(self) -> ClapForward:
        assert self._forward is not None
        return self._forward

    @property
    def source(self) -> ResolvedModel:
        return self._source

    @property
    def device(self) -> str:
        return self.forward.device

    @property
    def embedding_dim(self) -> int:
        return self.forward.embedding_dim

    @property
    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.forward.model.parameters())

    @property
    def config(self) -> ModelConfig:
        return self._cfg

    @property
    def tokenizer(self) -> Any:
        return self.forward.tokenizer

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        return model_identity(self._cfg, self._source, self._cfg.clap)


def load_clap(cfg: ModelConfig) -> ClapEncoder:
    """Resolve ``cfg.name_or_path`` (local directory, else Hub id) and load it; one-line errors."""
    from embsel_mlflow.models.device import resolve_device
    from embsel_mlflow.models.encoder import (
        _as_model_error,
        _check_model_dir,
        _no_loading_bars,
        check_model_config,
    )
    from embsel_mlflow.models.resolve import hub_offline_requested, probe_hub, resolve_model_source

    check_model_config(cfg)
    settings = cfg.clap or ClapSettings()
    if settings.truncation is not None and settings.truncation not in TRUNCATIONS:
        raise ConfigError(
            f"model.clap.truncation={settings.truncation!r} is not a CLAP truncation; "
            f"use one of {TRUNCATIONS} or null"
        )
    if settings.max_length_s is not None and settings.max_length_s < 1:
        raise ConfigError(
            f"model.clap.max_length_s must be >= 1 (seconds) or null, got {settings.max_length_s}"
        )
    source = resolve_model_source(cfg)
    if source.origin != HUB:
        from pathlib import Path

        _check_model_dir(Path(source.path_or_id))
    device = resolve_device(cfg.device)
    # As load_encoder: offline (asked for, or no answer from the Hub) means the local cache only.
    local_only = source.origin == HUB and (
        hub_offline_requested() or not probe_hub(source.path_or_id, cfg.revision, cfg.token)
    )
    forward_settings = {
        **serving_settings(cfg),
        "max_seq_length": cfg.max_seq_length,
        "max_length_s": settings.max_length_s,
        "truncation": settings.truncation,
        "precision": Precision(cfg.precision).value,
    }
    hub_kwargs = {
        "revision": cfg.revision if source.origin == HUB else None,
        "token": cfg.token,
        "trust_remote_code": cfg.trust_remote_code,
        "local_files_only": local_only,
        "model_kwargs": dict(cfg.model_kwargs),
    }
    with _as_model_error(source, local_only), _no_loading_bars():
        forward = ClapForward.from_pretrained(
            source.path_or_id, forward_settings, device=device, **hub_kwargs
        )
    return ClapEncoder(cfg, forward, source)
