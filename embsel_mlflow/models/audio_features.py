"""The classical audio baseline: MFCC statistics + PCA, fitted per dataset on its clips (never labels).

As LSA is for text: unfitted until :meth:`AudioFeaturesModel.for_dataset`, which fits on the
clips the dataset's task family names (``fit_texts``: the train split's clips for
classification, the evaluated clips for clustering, the corpus for retrieval). A fit is kept as
plain arrays (npz, no pickle) under ``<cache.dir>/models/audio_features/`` and reused. The
fitted model can be registered: it is served by the same forward (``audio_features_forward``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config.model import AudioFeaturesConfig
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.media.decode import load_audio
from embsel_mlflow.media.items import AUDIO, Media, batches, item_hash
from embsel_mlflow.models.audio_features_forward import AudioFeaturesForward, mfcc_statistics
from embsel_mlflow.models.audio_inputs import AudioForwardModel, serving_settings
from embsel_mlflow.models.base import FITTED
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData

log = logging.getLogger(__name__)
FIT_ON = ("auto",)


class AudioFeaturesModel(AudioForwardModel[AudioFeaturesForward]):
    """MFCC mean/std statistics (with deltas), standardised and PCA-projected; unfitted until for_dataset."""

    registrable = True  # once fitted: the champion of an audio selection can be served
    device = "cpu"

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        models_dir: Path | None = None,
        forward: AudioFeaturesForward | None = None,
        fitted_on: str = "",
        key: str | None = None,
    ) -> None:
        self._cfg = cfg
        self._settings = cfg.audio_features or AudioFeaturesConfig()
        check_settings(self._settings)
        self._models_dir = models_dir
        self._forward = forward
        self._fitted_on = fitted_on
        self._key = key

    def forward_settings(self) -> dict[str, Any]:
        """What the forward takes: the MFCC settings, whitening, normalising and batching."""
        s = self._settings
        return {
            **serving_settings(self._cfg),
            "sample_rate": s.sample_rate,
            "n_mfcc": s.n_mfcc,
            "n_mels": s.n_mels,
            "n_fft": s.n_fft,
            "hop_length": s.hop_length,
            "deltas": s.deltas,
            "whiten": s.whiten,
        }

    def for_dataset(self, data: TaskData) -> AudioFeaturesModel:
        """A copy fitted on the clips ``data``'s family names (see :func:`fit_clips`)."""
        clips, what = fit_clips(data)
        settings = self.forward_settings()
        key = hashlib.sha256(
            json.dumps(dataclasses.asdict(self._settings), sort_keys=True).encode()
            + _clips_digest(clips).encode()
        ).hexdigest()
        path = self._models_dir / "audio_features" / f"{key}.npz" if self._models_dir is not None else None
        forward = _load_fit(path, settings) if path is not None and path.is_file() else None
        if forward is None:
            statistics = np.concatenate(
                [
                    np.stack(
                        [
                            mfcc_statistics(clip, settings)
                            for clip in load_audio(batch, sample_rate=self._settings.sample_rate)
                        ]
                    )
                    for batch in batches(clips, self._cfg.batch_size)
                ]
            )
            try:
                forward = AudioFeaturesForward.fit(
                    statistics, settings, n_components=self._settings.n_components, seed=self._settings.seed
                )
            except ValueError as err:  # e.g. a single clip
                raise DataError(f"dataset '{data.name}': cannot fit MFCC + PCA on its {what}: {err}") from err
            if path is not None:
                try:
                    forward.save_arrays(path)
                except OSError as err:  # a read-only or full disk only costs a refit next time
                    log.warning("could not keep the MFCC + PCA fit in %s: %s", path, err)
        return AudioFeaturesModel(
            self._cfg,
            models_dir=self._models_dir,
            forward=forward,
            fitted_on=f"{data.name} {what} ({len(clips)} clips)",
            key=key,
        )

    @property
    def forward(self) -> AudioFeaturesForward | None:
        return self._forward

    @property
    def fitted_on(self) -> str:
        """What the model was fitted on, e.g. 'spoken train clips (no labels) (90 clips)'."""
        return self._fitted_on

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel("librosa MFCC statistics + scikit-learn PCA", FITTED, self._key)

    @property
    def embedding_dim(self) -> int:
        return self._forward.embedding_dim if self._forward is not None else self._settings.n_components

    @property
    def num_parameters(self) -> int:
        """Standardisation and PCA arrays (0 before fitting)."""
        if self._forward is None:
            return 0
        return int(sum(array.size for array in self._forward.arrays.values()))

    @property
    def disk_size_bytes(self) -> int | None:
        if self._forward is None:
            return None
        return int(sum(array.nbytes for array in self._forward.arrays.values()))

    @property
    def config(self) -> ModelConfig:
        return self._cfg

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source, self._settings)
        identity["fitted_on"] = self._fitted_on
        return identity


def check_settings(settings: AudioFeaturesConfig) -> None:
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


def _load_fit(path: Path, settings: dict[str, Any]) -> AudioFeaturesForward | None:
    """The fit stored at ``path``, or None if it cannot be read (then it is refitted)."""
    try:
        return AudioFeaturesForward.load_arrays(path, settings)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable MFCC + PCA fit %s: %s", path, err)
        return None


def _clips_digest(clips: list[Media]) -> str:
    """sha256 of the fit clips' content hashes, in order: the same clips give the same fit."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(item_hash(clip))
    return digest.hexdigest()
