"""``model.kind=clap``: an audio-text dual encoder (transformers ``ClapModel`` + ``ClapProcessor``).

Texts go through the text tower (role prompts apply), clips through the audio tower, into one
space; clips are decoded one batch at a time, made mono and resampled to the processor's rate
(48 kHz). The forward pass is ``clap_forward.py``, which the served model runs too. Loaded like
every model: a local directory or a Hub id (``models.resolve``), safetensors only, no remote
code unless ``model.trust_remote_code``; offline, an uncached Hub id is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.config.model import ClapSettings
from embsel_mlflow.errors import ConfigError, ModelError, first_line
from embsel_mlflow.media.items import AUDIO, TEXT
from embsel_mlflow.models.clap_forward import ClapForward
from embsel_mlflow.models.device import resolve_precision
from embsel_mlflow.models.media_model import MediaModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.resolve import ResolvedModel

TRUNCATIONS = ("rand_trunc", "fusion")
REQUIREMENTS = ("transformers", "torch", "safetensors", "soundfile", "soxr")


class ClapEncoder(MediaModel):
    """A loaded CLAP: ``encode`` takes texts or audio :class:`~embsel_mlflow.media.Media`."""

    modalities: ClassVar[frozenset[str]] = frozenset({TEXT, AUDIO})

    def __init__(self, forward: ClapForward, cfg: ModelConfig, source: ResolvedModel) -> None:
        self.forward = forward
        self.sample_rate = forward.sample_rate
        self._cfg = cfg
        self._source = source

    @property
    def model(self) -> Any:
        """The transformers ClapModel."""
        return self.forward.model

    @property
    def tokenizer(self) -> Any:
        return self.forward.tokenizer

    @property
    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.forward.model.parameters())

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        return model_identity(self._cfg, self._source, self._cfg.clap)

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """Weights (safetensors) and processor (its clip length and crop as run) under ``directory``."""
        settings = self.forward.save(Path(directory))
        return {
            **settings,
            "kind": "clap",
            "modalities": sorted(self.modalities),
            "requirements": list(REQUIREMENTS),
            "sample_rate": self.sample_rate,
        }


def forward_settings(cfg: ModelConfig) -> dict[str, Any]:
    """What ``clap_forward`` reads: normalisation, text length, clip length and crop, precision."""
    settings = cfg.clap or ClapSettings()
    return {
        "normalize": bool(cfg.normalize),
        "batch_size": int(cfg.batch_size),
        "max_seq_length": cfg.max_seq_length,
        "max_length_s": settings.max_length_s,
        "truncation": settings.truncation,
        "precision": resolve_precision(cfg).value,  # auto resolved here
    }


def load_clap(cfg: ModelConfig) -> ClapEncoder:
    """Resolve ``cfg.name_or_path`` (local directory, else Hub id) and load it; one-line errors."""
    from embsel_mlflow.models.device import resolve_device
    from embsel_mlflow.models.encoder import check_model_config
    from embsel_mlflow.models.hub_loading import hub_load

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
    load = hub_load(cfg)
    hub_kwargs = {**load.kwargs, "model_kwargs": dict(cfg.model_kwargs)}
    with load.loading():
        try:
            forward = ClapForward.from_pretrained(
                load.source.path_or_id, forward_settings(cfg), device=resolve_device(cfg.device), **hub_kwargs
            )
        except (ValueError, TypeError, AttributeError) as err:  # e.g. a BERT directory: no CLAP config
            if isinstance(err, ValueError) and (
                "trust_remote_code" in str(err) or "Unrecognized" in str(err)
            ):
                raise  # as_model_error words these
            raise ModelError(f"model '{cfg.name}' cannot be used as kind=clap: {first_line(err)}") from err
    return ClapEncoder(forward, cfg, load.source)
