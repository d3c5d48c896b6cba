"""resemblyzer's pretrained speaker encoder, from the weights its wheel ships (no Hub, no network)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.model import ResemblyzerConfig
from embsel_mlflow.errors import ConfigError, ModelError, first_line
from embsel_mlflow.models.audio_inputs import AudioForwardModel, serving_settings
from embsel_mlflow.models.base import PretrainedCandidate
from embsel_mlflow.models.resemblyzer_forward import ResemblyzerForward
from embsel_mlflow.models.resolve import OFFLINE_PACKAGE, ResolvedModel, sha256_file

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig

PACKAGE = "resemblyzer"  # model.name_or_path: the weights inside the installed package
WEIGHTS = "pretrained.pt"


class ResemblyzerModel(AudioForwardModel[ResemblyzerForward], PretrainedCandidate):
    """resemblyzer's VoiceEncoder (3-layer LSTM over 40 mel bands, 256-d), run on 16 kHz mono clips."""

    def __init__(self, cfg: ModelConfig) -> None:
        self._cfg = cfg
        self._settings = cfg.resemblyzer or ResemblyzerConfig()
        if cfg.name_or_path != PACKAGE:
            raise ConfigError(
                f"model.kind=resemblyzer runs the weights shipped in the resemblyzer package; set "
                f"model.name_or_path={PACKAGE} (got {cfg.name_or_path!r})"
            )
        if not 0 < self._settings.min_coverage <= 1 or self._settings.rate <= 0:
            raise ConfigError(
                "model.resemblyzer.rate must be > 0 and model.resemblyzer.min_coverage in (0, 1], got "
                f"{self._settings.rate} and {self._settings.min_coverage}"
            )
        weights = packaged_weights()
        digest = weights_sha256(str(weights))
        expected = (self._settings.sha256 or "").strip().lower()
        if expected and digest != expected:
            raise ModelError(
                f"refusing resemblyzer weights {weights}: expected sha256 {expected}, got {digest}; "
                "reinstall resemblyzer or fix model.resemblyzer.sha256"
            )
        self._source = ResolvedModel(str(weights), OFFLINE_PACKAGE, digest)
        settings = {
            **serving_settings(cfg),
            "rate": self._settings.rate,
            "min_coverage": self._settings.min_coverage,
            "trim_silences": self._settings.trim_silences,
        }
        self._forward = ResemblyzerForward(
            _packaged_state(weights), settings, device=_device(cfg)
        )

    @property
    def forward(self) -> ResemblyzerForward:
        assert self._forward is not None
        return self._forward

    @property
    def source(self) -> ResolvedModel:
        return self._source

    @property
    def device(self) -> str:
        return str(self.forward.network.device)

    @property
    def embedding_dim(self) -> int:
        return self.forward.embedding_dim

    @property
    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.forward.network.parameters())

    @property
    def disk_size_bytes(self) -> int | None:
        return Path(self._source.path_or_id).stat().st_size

    @property
    def config(self) -> ModelConfig:
        return self._cfg

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        return model_identity(self._cfg, self._source, self._settings)


def packaged_weights() -> Path:
    """``resemblyzer/pretrained.pt`` of the installed package (one-line error when it is missing)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelError("model.kind=resemblyzer needs the resemblyzer package: pip install resemblyzer")
    weights = Path(spec.origin).with_name(WEIGHTS)
    if not weights.is_file():
        raise ModelError(f"the resemblyzer package has no {WEIGHTS} at {weights}; reinstall resemblyzer")
    return weights


@functools.lru_cache(maxsize=4)
def weights_sha256(path: str) -> str:
    """sha256 of the packaged weights (17 MB), once per process."""
    return sha256_file(Path(path))


def _packaged_state(weights: Path) -> dict[str, Any]:
    """The encoder's tensors from the package's checkpoint, read with ``weights_only`` (no code runs)."""
    import torch

    try:
        checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
        return dict(checkpoint["model_state"])
    except Exception as err:  # a damaged file: any unpickling or key error
        raise ModelError(
            f"cannot read resemblyzer weights {weights}: {first_line(err)}; reinstall resemblyzer"
        ) from err


def _device(cfg: ModelConfig) -> str:
    from embsel_mlflow.models.device import resolve_device

    device = resolve_device(cfg.device)
    return "cpu" if device == "mps" else device  # resemblyzer's LSTM is only checked on cpu and cuda
