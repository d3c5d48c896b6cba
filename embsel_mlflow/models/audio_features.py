"""``model.kind=audio_features``: MFCC statistics + PCA, fitted per dataset on its clips (never labels).

The audio counterpart of LSA: :meth:`AudioFeaturesModel.for_dataset` fits on the clips the task
family names (``fit_texts``: the train split's clips for classification, the evaluated clips
for clustering, the corpus for retrieval), decoding one batch at a time. A fit is plain arrays
(npz, no pickle) kept under ``<cache.dir>/models/audio_features/`` and reused, and is what the
served model loads (``save_serving``; the forward pass is ``audio_features_forward.py``). With
``model.name_or_path`` naming a saved fit (a logged model's ``weights/``), that fit is used as
it is on every dataset.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config.model import AudioFeaturesConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.media.decode import load_audio
from embsel_mlflow.media.items import AUDIO, Media, batches, item_hash
from embsel_mlflow.models.audio_features_forward import ARRAYS_FILE, AudioFeaturesForward, mfcc_statistics
from embsel_mlflow.models.fitted_media import FIT_READ_ERRORS, FittedMediaModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData

FIT_ON = ("auto",)
SETTINGS_FILE = "audio_features.json"
REQUIREMENTS = ("librosa", "soundfile", "soxr")


class AudioFeaturesModel(FittedMediaModel[AudioFeaturesForward, AudioFeaturesConfig]):
    """MFCC mean/std statistics (with deltas), standardised and PCA-projected; unfitted until for_dataset."""

    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO})
    kind = "audio_features"
    fit_name = "MFCC + PCA"
    item_noun = "clips"
    settings_file = SETTINGS_FILE
    fit_file = ARRAYS_FILE
    saved_load_errors = (*FIT_READ_ERRORS, TypeError)

    def __init__(self, cfg: ModelConfig, **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.sample_rate = self._settings.sample_rate

    @classmethod
    def checked_settings(cls, cfg: ModelConfig) -> AudioFeaturesConfig:
        return check_settings(cfg.audio_features or AudioFeaturesConfig())

    @classmethod
    def load_saved(
        cls, cfg: ModelConfig, directory: Path, section: dict[str, Any]
    ) -> tuple[ModelConfig, AudioFeaturesForward]:
        fields = {field.name for field in dataclasses.fields(AudioFeaturesConfig)}
        settings = AudioFeaturesConfig(**{k: v for k, v in section.items() if k in fields})
        cfg = dataclasses.replace(cfg, audio_features=settings, normalize=bool(section.get("normalize")))
        return cfg, AudioFeaturesForward.load_arrays(directory / ARRAYS_FILE, cls(cfg).forward_settings())

    def forward_settings(self) -> dict[str, Any]:
        """What ``audio_features_forward`` reads: the MFCC settings, whitening, normalising, batching."""
        s = self._settings
        return {
            "sample_rate": s.sample_rate,
            "n_mfcc": s.n_mfcc,
            "n_mels": s.n_mels,
            "n_fft": s.n_fft,
            "hop_length": s.hop_length,
            "deltas": s.deltas,
            "whiten": s.whiten,
            "normalize": bool(self._cfg.normalize),
            "batch_size": int(self._cfg.batch_size),
        }

    def fit_items(self, data: TaskData) -> tuple[list[Media], str]:
        return fit_clips(data)

    def item_key(self, item: Media) -> bytes:
        return item_hash(item)

    def key_settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self._settings)

    def fit(self, items: list[Media], settings: dict[str, Any], name: str, what: str) -> AudioFeaturesForward:
        """Statistics of every clip (decoded a batch at a time), then standardisation and a PCA."""
        if len(items) < 2:
            raise DataError(f"dataset '{name}': cannot fit MFCC + PCA on {len(items)} clip(s) of its {what}")
        rows = [
            mfcc_statistics(clip, settings)
            for batch in batches(items, self._cfg.batch_size)
            for clip in load_audio(batch, sample_rate=self._settings.sample_rate)
        ]
        return AudioFeaturesForward.fit(
            np.stack(rows), settings, n_components=self._settings.n_components, seed=self._settings.seed
        )

    def read_fit(self, path: Path, settings: dict[str, Any]) -> AudioFeaturesForward:
        return AudioFeaturesForward.load_arrays(path, settings)

    def write_fit(self, forward: AudioFeaturesForward, path: Path) -> None:
        forward.save_arrays(path)

    def save_fit(self, forward: AudioFeaturesForward, directory: Path) -> dict[str, Any]:
        return {
            **forward.save(directory),
            "kind": self.kind,
            "modalities": [AUDIO],
            "requirements": list(REQUIREMENTS),
            "sample_rate": self._settings.sample_rate,
        }

    def source_name(self) -> str:
        return "librosa MFCC statistics + scikit-learn PCA"

    def unfitted_dim(self) -> int:
        return self._settings.n_components

    def fit_arrays(self, forward: AudioFeaturesForward) -> dict[str, np.ndarray]:
        return forward.arrays


def check_settings(settings: AudioFeaturesConfig) -> AudioFeaturesConfig:
    """Refuse settings no fit can run with (one line), before any clip is read."""
    if settings.fit_on not in FIT_ON:
        raise ConfigError(
            f"model.audio_features.fit_on={settings.fit_on!r} is not supported; use one of {FIT_ON}"
        )
    for name in ("sample_rate", "n_mfcc", "n_mels", "n_fft", "hop_length", "n_components"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"model.audio_features.{name} must be >= 1, got {getattr(settings, name)}")
    if settings.n_mfcc > settings.n_mels:
        raise ConfigError(
            f"model.audio_features.n_mfcc={settings.n_mfcc} exceeds n_mels={settings.n_mels}: "
            "there are no more cepstral coefficients than mel bands"
        )
    return settings


def fit_clips(data: TaskData) -> tuple[list[Media], str]:
    """The distinct audio clips (by content) the model is fitted on for ``data``, and what they are."""
    family = data.family
    if family is None:
        raise DataError(f"MFCC + PCA cannot be fitted for dataset '{data.name}': it carries no task family")
    items, what = family.fit_texts(data)
    items_list: list[Any] = list(items)
    if not all(isinstance(item, Media) and item.modality == AUDIO for item in items_list):
        raise DataError(
            f"model.kind=audio_features fits on audio clips, but dataset '{data.name}' ({data.task}) gives "
            f"{what} that are not audio; use it on an audio task"
        )
    distinct: dict[bytes, Media] = {}
    for item in items_list:  # one clip per content: a copy under another name adds nothing
        distinct.setdefault(item_hash(item), item)
    return list(distinct.values()), what
