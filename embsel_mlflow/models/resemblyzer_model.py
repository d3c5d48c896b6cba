"""``model.kind=resemblyzer``: resemblyzer's pretrained speaker encoder, from the weights its wheel ships.

No Hub, no network: ``model.name_or_path=resemblyzer`` runs ``resemblyzer/pretrained.pt`` of the
installed package, pinned by ``model.resemblyzer.sha256`` (refused if it differs) and read with
``torch.load(weights_only=True)``. The forward pass is ``resemblyzer_forward.py``, which the
served model runs too; ``name_or_path`` may also name what :meth:`ResemblyzerModel.save_serving`
wrote (a logged model's ``weights/``: safetensors and its settings), as from_run does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from embsel_mlflow.config.model import ResemblyzerConfig
from embsel_mlflow.errors import ConfigError, ModelError, first_line
from embsel_mlflow.media.items import AUDIO
from embsel_mlflow.models.media_model import MediaModel
from embsel_mlflow.models.resemblyzer_forward import SAMPLE_RATE, WEIGHTS_FILE, ResemblyzerForward
from embsel_mlflow.models.resolve import LOCAL, OFFLINE_PACKAGE, ResolvedModel, sha256_file

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig

PACKAGE = "resemblyzer"  # model.name_or_path: the weights inside the installed package
WEIGHTS = "pretrained.pt"
SETTINGS_FILE = "resemblyzer.json"
REQUIREMENTS = ("resemblyzer", "webrtcvad", "librosa", "torch", "safetensors", "soundfile", "soxr")


class ResemblyzerModel(MediaModel):
    """resemblyzer's VoiceEncoder (3-layer LSTM over 40 mel bands, 256-d), run on 16 kHz mono clips."""

    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO})
    sample_rate = SAMPLE_RATE

    def __init__(self, cfg: ModelConfig) -> None:
        saved = saved_dir(cfg.name_or_path)
        if saved is not None:  # what save_serving wrote: its own settings win over cfg's
            cfg = dataclasses.replace(cfg, resemblyzer=_saved_settings(saved))
        elif cfg.name_or_path != PACKAGE:
            raise ConfigError(
                f"model.kind=resemblyzer runs the weights shipped in the resemblyzer package; set "
                f"model.name_or_path={PACKAGE} (got {cfg.name_or_path!r})"
            )
        self._cfg = cfg
        self._settings = cfg.resemblyzer or ResemblyzerConfig()
        if not 0 < self._settings.min_coverage <= 1 or self._settings.rate <= 0:
            raise ConfigError(
                "model.resemblyzer.rate must be > 0 and model.resemblyzer.min_coverage in (0, 1], got "
                f"{self._settings.rate} and {self._settings.min_coverage}"
            )
        if saved is not None:
            weights = saved / WEIGHTS_FILE
            self._source = ResolvedModel(str(saved), LOCAL, weights_sha256(str(weights)))
            state = _safetensors_state(weights)
        else:
            weights = packaged_weights()
            self._source = ResolvedModel(str(weights), OFFLINE_PACKAGE, self._verified(weights))
            state = _packaged_state(weights)
        self.forward = ResemblyzerForward(state, self.forward_settings(), device=_device(cfg))

    def _verified(self, weights: Path) -> str:
        digest = weights_sha256(str(weights))
        expected = (self._settings.sha256 or "").strip().lower()
        if expected and digest != expected:
            raise ModelError(
                f"refusing resemblyzer weights {weights}: expected sha256 {expected}, got {digest}; "
                "reinstall resemblyzer or fix model.resemblyzer.sha256"
            )
        return digest

    def forward_settings(self) -> dict[str, Any]:
        """What ``resemblyzer_forward`` reads: resemblyzer's slicing and trimming, and batching."""
        return {
            "rate": self._settings.rate,
            "min_coverage": self._settings.min_coverage,
            "trim_silences": self._settings.trim_silences,
            "batch_size": int(self._cfg.batch_size),
        }

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """The encoder's weights (safetensors) and settings under ``directory``; the serving settings."""
        directory = Path(directory)
        settings = self.forward.save(directory)
        section = {**dataclasses.asdict(self._settings), "sha256": None}  # the packaged file's hash
        (directory / SETTINGS_FILE).write_text(json.dumps(section, indent=2), encoding="utf-8")
        return {
            **settings,
            "kind": "resemblyzer",
            "modalities": [AUDIO],
            "requirements": list(REQUIREMENTS),
            "sample_rate": SAMPLE_RATE,
        }

    @property
    def num_parameters(self) -> int:
        return sum(parameter.numel() for parameter in self.forward.network.parameters())

    @property
    def disk_size_bytes(self) -> int | None:
        path = Path(self._source.path_or_id)
        return (path / WEIGHTS_FILE if path.is_dir() else path).stat().st_size

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


def saved_dir(name_or_path: str | None) -> Path | None:
    """``name_or_path`` as a directory save_serving wrote, or None."""
    if not name_or_path or name_or_path == PACKAGE:
        return None
    directory = Path(name_or_path).expanduser()
    return directory if (directory / WEIGHTS_FILE).is_file() else None


@functools.lru_cache(maxsize=8)
def weights_sha256(path: str) -> str:
    """sha256 of a weights file (the packaged one is 17 MB), once per process."""
    return sha256_file(Path(path))


def _saved_settings(directory: Path) -> ResemblyzerConfig:
    try:
        section = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read the resemblyzer settings in {directory}: {first_line(err)}") from err
    fields = {field.name for field in dataclasses.fields(ResemblyzerConfig)}
    return ResemblyzerConfig(**{key: value for key, value in section.items() if key in fields})


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


def _safetensors_state(weights: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(weights))
    except (OSError, SafetensorError) as err:
        raise ModelError(f"cannot read resemblyzer weights {weights}: {first_line(err)}") from err


def _device(cfg: ModelConfig) -> str:
    from embsel_mlflow.models.device import resolve_device

    device = resolve_device(cfg.device)
    return "cpu" if device == "mps" else device  # resemblyzer runs its LSTM on cpu or cuda
