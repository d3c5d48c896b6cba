"""``model.kind=clip``: an image-text dual encoder (CLIPModel, SiglipModel) via transformers' Auto classes.

Texts are embedded by the text tower (role prompts apply), images by the vision tower, into one
space; the forward pass is ``clip_forward.py``, which the served model runs too. Loaded like
every model: a local directory or a Hub id (``models.resolve``), safetensors only, no remote
code unless ``model.trust_remote_code``; offline, an uncached Hub id is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.errors import ModelError, first_line
from embsel_mlflow.media.items import IMAGE, TEXT
from embsel_mlflow.models.clip_forward import ClipForward
from embsel_mlflow.models.device import resolve_precision
from embsel_mlflow.models.media_model import MediaModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.resolve import ResolvedModel

MODULE = "clip_forward"
REQUIREMENTS = ("transformers", "torch", "safetensors", "pillow")


class ClipModel(MediaModel):
    """A loaded dual encoder: ``encode`` takes texts or image :class:`~embsel_mlflow.media.Media`."""

    modalities: ClassVar[frozenset[str]] = frozenset({TEXT, IMAGE})

    def __init__(self, forward: ClipForward, cfg: ModelConfig, source: ResolvedModel) -> None:
        self.forward = forward
        self._cfg = cfg
        self._source = source

    @property
    def model(self) -> Any:
        """The transformers model (CLIPModel, SiglipModel): what fine-tuning trains in place."""
        return self.forward.model

    @property
    def processor(self) -> Any:
        """Its processor (tokenizer + image processor)."""
        return self.forward.processor

    @property
    def tokenizer(self) -> Any:
        return self.forward.processor.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self.forward.max_length

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.forward.model.parameters())

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        return model_identity(self._cfg, self._source)

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """Weights (safetensors) and processor under ``directory``; the serving settings."""
        self.forward.save(directory)
        return {
            "module": MODULE,
            "kind": "clip",
            "modalities": sorted(self.modalities),
            "requirements": list(REQUIREMENTS),
            **forward_settings(self._cfg),
        }


def forward_settings(cfg: ModelConfig) -> dict[str, Any]:
    """What ``clip_forward`` reads: normalisation, text length, precision."""
    return {
        "normalize": bool(cfg.normalize),
        "max_length": cfg.max_seq_length,
        "precision": resolve_precision(cfg).value,  # auto resolved here
    }


def load_clip(cfg: ModelConfig) -> ClipModel:
    """Resolve and load the dual encoder ``cfg`` names, on ``model.device``."""
    from embsel_mlflow.models.device import resolve_device
    from embsel_mlflow.models.encoder import check_model_config
    from embsel_mlflow.models.hub_loading import hub_load

    check_model_config(cfg)
    if cfg.variant.backend != "torch" or cfg.variant.quantization != "none":
        raise ModelError(
            f"model '{cfg.name}' (kind=clip) has no variants: keep model.variant at its defaults"
        )
    load = hub_load(cfg)
    with load.loading():
        try:
            forward = ClipForward.from_pretrained(
                load.source.path_or_id,
                forward_settings(cfg),
                device=resolve_device(cfg.device),
                **load.kwargs,
            )
        except ValueError as err:
            if "trust_remote_code" in str(err) or "Unrecognized" in str(err):
                raise  # as_model_error words these
            raise ModelError(f"model '{cfg.name}' cannot be used as kind=clip: {first_line(err)}") from err
    return ClipModel(forward, cfg, load.source)
