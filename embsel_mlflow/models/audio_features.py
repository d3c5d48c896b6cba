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
import hashlib
import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from embsel_mlflow.config.model import AudioFeaturesConfig
from embsel_mlflow.errors import ConfigError, DataError, ModelError, first_line
from embsel_mlflow.media.decode import load_audio
from embsel_mlflow.media.items import AUDIO, Media, batches, item_hash
from embsel_mlflow.models.audio_features_forward import ARRAYS_FILE, AudioFeaturesForward, mfcc_statistics
from embsel_mlflow.models.base import FITTED
from embsel_mlflow.models.media_model import MediaModel
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData

log = logging.getLogger(__name__)
FIT_ON = ("auto",)
SETTINGS_FILE = "audio_features.json"
REQUIREMENTS = ("librosa", "soundfile", "soxr")


class AudioFeaturesModel(MediaModel):
    """MFCC mean/std statistics (with deltas), standardised and PCA-projected; unfitted until for_dataset."""

    modalities: ClassVar[frozenset[str]] = frozenset({AUDIO})
    device = "cpu"

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        models_dir: Path | None = None,
        forward: AudioFeaturesForward | None = None,
        fitted_on: str = "",
        key: str | None = None,
        saved: bool = False,
    ) -> None:
        self._cfg = cfg
        self._settings = check_settings(cfg.audio_features or AudioFeaturesConfig())
        self.sample_rate = self._settings.sample_rate
        self._models_dir = models_dir
        self.forward = forward
        self._fitted_on = fitted_on
        self._key = key
        self._saved = saved  # loaded from a saved fit: for_dataset keeps it

    @classmethod
    def from_saved(cls, cfg: ModelConfig, directory: Path) -> AudioFeaturesModel:
        """The fit ``save_serving`` wrote in ``directory`` (its own settings win over ``cfg``'s)."""
        try:
            section = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
            fields = {field.name for field in dataclasses.fields(AudioFeaturesConfig)}
            settings = AudioFeaturesConfig(**{k: v for k, v in section.items() if k in fields})
            cfg = dataclasses.replace(cfg, audio_features=settings, normalize=bool(section.get("normalize")))
            model = cls(cfg)
            forward = AudioFeaturesForward.load_arrays(directory / ARRAYS_FILE, model.forward_settings())
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            raise ModelError(f"cannot load the MFCC + PCA fit in {directory}: {first_line(err)}") from err
        key = hashlib.sha256((directory / ARRAYS_FILE).read_bytes()).hexdigest()
        return cls(cfg, forward=forward, fitted_on=f"saved fit {directory}", key=key, saved=True)

    @property
    def registrable(self) -> bool:  # type: ignore[override]
        """Once fitted: the fit is what gets logged and served."""
        return self.forward is not None

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

    def for_dataset(self, data: TaskData) -> AudioFeaturesModel:
        """A copy fitted on the clips ``data``'s family names (:func:`fit_clips`); a saved fit as it is."""
        if self._saved:
            return self
        clips, what = fit_clips(data)
        settings = self.forward_settings()
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self._settings), sort_keys=True).encode())
        for clip in clips:
            digest.update(item_hash(clip))
        key = digest.hexdigest()
        path = self._models_dir / "audio_features" / f"{key}.npz" if self._models_dir is not None else None
        forward = _load_fit(path, settings) if path is not None and path.is_file() else None
        if forward is None:
            forward = self._fit(clips, settings, data.name, what)
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

    def _fit(
        self, clips: list[Media], settings: dict[str, Any], name: str, what: str
    ) -> AudioFeaturesForward:
        """Statistics of every clip (decoded a batch at a time), then standardisation and a PCA."""
        if len(clips) < 2:
            raise DataError(f"dataset '{name}': cannot fit MFCC + PCA on {len(clips)} clip(s) of its {what}")
        rows = [
            mfcc_statistics(clip, settings)
            for batch in batches(clips, self._cfg.batch_size)
            for clip in load_audio(batch, sample_rate=self._settings.sample_rate)
        ]
        return AudioFeaturesForward.fit(
            np.stack(rows), settings, n_components=self._settings.n_components, seed=self._settings.seed
        )

    def encode(self, texts: Any, *, role: str | None = None, show_progress: bool = False) -> np.ndarray:
        if self.forward is None:
            raise ModelError(
                f"MFCC + PCA model '{self._cfg.name}' is not fitted yet: call for_dataset(data) first"
            )
        return super().encode(texts, role=role, show_progress=show_progress)

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """The fit (npz) and its settings under ``directory``; the serving settings."""
        if self.forward is None:
            raise ModelError(f"MFCC + PCA model '{self._cfg.name}' is not fitted: nothing to save")
        directory = Path(directory)
        settings = self.forward.save(directory)
        section = {**dataclasses.asdict(self._settings), "normalize": bool(self._cfg.normalize)}
        (directory / SETTINGS_FILE).write_text(json.dumps(section, indent=2), encoding="utf-8")
        return {
            **settings,
            "kind": "audio_features",
            "modalities": [AUDIO],
            "requirements": list(REQUIREMENTS),
            "sample_rate": self._settings.sample_rate,
        }

    @property
    def fitted_on(self) -> str:
        """What the model was fitted on, e.g. 'spoken train split (no labels) (90 clips)'."""
        return self._fitted_on

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel("librosa MFCC statistics + scikit-learn PCA", FITTED, self._key)

    @property
    def embedding_dim(self) -> int:
        return self.forward.embedding_dim if self.forward is not None else self._settings.n_components

    @property
    def num_parameters(self) -> int:
        """Standardisation and PCA arrays (0 before fitting)."""
        if self.forward is None:
            return 0
        return int(sum(array.size for array in self.forward.arrays.values()))

    @property
    def disk_size_bytes(self) -> int | None:
        if self.forward is None:
            return None
        return int(sum(array.nbytes for array in self.forward.arrays.values()))

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source, self._settings)
        identity["fitted_on"] = self._fitted_on
        return identity


def saved_fit_dir(name_or_path: str | None) -> Path | None:
    """``name_or_path`` as a directory holding a saved fit, or None (then the model is fitted per dataset)."""
    if not name_or_path:
        return None
    directory = Path(name_or_path).expanduser()
    return (
        directory if (directory / ARRAYS_FILE).is_file() and (directory / SETTINGS_FILE).is_file() else None
    )


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


def _load_fit(path: Path, settings: dict[str, Any]) -> AudioFeaturesForward | None:
    """The fit stored at ``path``, or None if it cannot be read (then it is refitted)."""
    try:
        return AudioFeaturesForward.load_arrays(path, settings)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("ignoring unreadable MFCC + PCA fit %s: %s", path, err)
        return None
