"""MFCC statistics + PCA: the classical audio baseline's fit and forward, for evaluation and serving.

SELF-CONTAINED on purpose (numpy, librosa; scikit-learn only to fit; no embsel_mlflow import): a
registered model ships this file beside its pyfunc (``code_paths``) and calls :func:`load` on the
directory :meth:`AudioFeaturesForward.save` wrote. Both sides hand it decoded clips (``media_io``:
mono float32 at ``sample_rate``).

A clip's statistics: the mean and standard deviation over time of each MFCC (and, with
``deltas``, of its first and second differences). They are standardised with the fit clips'
mean and deviation, then projected on the principal axes of the fit clips (a PCA, as
scikit-learn's ``PCA.transform``, optionally whitened). The fit sees clips only, never labels.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

MODULE = "audio_features_forward"
ARRAYS_FILE = "audio_features.npz"
_ARRAYS = ("center", "scale", "pca_mean", "components", "explained_variance")
DEFAULT_SETTINGS: dict[str, Any] = {
    "sample_rate": 16000,
    "n_mfcc": 20,
    "n_mels": 40,
    "n_fft": 512,
    "hop_length": 160,
    "deltas": True,
    "whiten": False,
    "normalize": False,
    "batch_size": 64,
}


def statistics_dim(settings: dict[str, Any]) -> int:
    """Width of a clip's statistics: mean and deviation of each coefficient (x3 with deltas)."""
    settings = {**DEFAULT_SETTINGS, **settings}
    return int(settings["n_mfcc"]) * 2 * (3 if settings["deltas"] else 1)


def mfcc_statistics(clip: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """The statistics vector of one mono clip at ``settings["sample_rate"]`` (float64)."""
    import librosa

    settings = {**DEFAULT_SETTINGS, **settings}
    mfcc = librosa.feature.mfcc(
        y=np.asarray(clip, dtype=np.float32),
        sr=int(settings["sample_rate"]),
        n_mfcc=int(settings["n_mfcc"]),
        n_mels=int(settings["n_mels"]),
        n_fft=int(settings["n_fft"]),
        hop_length=int(settings["hop_length"]),
    ).astype(np.float64)
    series = [mfcc]
    if settings["deltas"]:
        # "nearest" edges: a clip shorter than the 9-frame delta window still has deltas
        series += [librosa.feature.delta(mfcc, order=order, mode="nearest") for order in (1, 2)]
    return np.concatenate([np.concatenate([s.mean(axis=1), s.std(axis=1)]) for s in series])


class AudioFeaturesForward:
    """Fitted standardisation and PCA over MFCC statistics: clips in, ``n_components``-d embeddings out."""

    modalities = ("audio",)

    def __init__(self, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.settings = {**DEFAULT_SETTINGS, **settings}
        self.center = np.asarray(arrays["center"], dtype=np.float64)
        self.scale = np.asarray(arrays["scale"], dtype=np.float64)
        self.pca_mean = np.asarray(arrays["pca_mean"], dtype=np.float64)
        self.components = np.asarray(arrays["components"], dtype=np.float64)
        self.explained_variance = np.asarray(arrays["explained_variance"], dtype=np.float64)
        dim = statistics_dim(self.settings)
        if self.components.ndim != 2 or self.components.shape[1] != dim or self.center.shape != (dim,):
            raise ValueError(
                f"fitted arrays do not match {dim} MFCC statistics: components {self.components.shape}"
            )

    @classmethod
    def fit(
        cls, statistics: np.ndarray, settings: dict[str, Any], *, n_components: int, seed: int
    ) -> AudioFeaturesForward:
        """Standardise ``statistics`` (n clips x dim) and fit a PCA of at most ``n_components`` axes."""
        from sklearn.decomposition import PCA

        stats = np.asarray(statistics, dtype=np.float64)
        if stats.ndim != 2 or stats.shape[0] < 2:
            raise ValueError(f"a PCA needs at least 2 clips, got {stats.shape[0] if stats.ndim == 2 else 0}")
        center = stats.mean(axis=0)
        deviation = stats.std(axis=0)
        scale = np.where(deviation > 1e-12, deviation, 1.0)  # a constant statistic stays 0, not NaN
        components = max(1, min(n_components, stats.shape[0] - 1, stats.shape[1]))
        pca = PCA(n_components=components, svd_solver="full", random_state=seed).fit((stats - center) / scale)
        arrays = {
            "center": center,
            "scale": scale,
            "pca_mean": pca.mean_,
            "components": pca.components_,
            "explained_variance": pca.explained_variance_,
        }
        return cls(settings, arrays)

    @property
    def sample_rate(self) -> int:
        return int(self.settings["sample_rate"])

    @property
    def embedding_dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in _ARRAYS}

    def project(self, statistics: np.ndarray) -> np.ndarray:
        """Standardised statistics on the principal axes (scikit-learn's ``PCA.transform``)."""
        z = (np.atleast_2d(statistics) - self.center) / self.scale
        out = (z - self.pca_mean) @ self.components.T
        if self.settings["whiten"]:
            out = out / np.sqrt(np.maximum(self.explained_variance, 1e-12))
        embeddings = out.astype(np.float32)
        if self.settings["normalize"]:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(embeddings, dtype=np.float32)

    def embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        if not clips:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        return self.project(np.stack([mfcc_statistics(clip, self.settings) for clip in clips]))

    def encode(self, inputs: list[Any], modality: str) -> np.ndarray:
        """Embeddings of decoded clips (mono float32 at ``sample_rate``), a batch at a time."""
        if modality != "audio":
            raise ValueError(f"MFCC statistics embed audio only, not {modality}")
        size = max(1, int(self.settings["batch_size"]))
        out = [self.embed_clips(list(inputs[start : start + size])) for start in range(0, len(inputs), size)]
        return np.concatenate(out) if out else np.empty((0, self.embedding_dim), dtype=np.float32)

    def save_arrays(self, path: Path) -> None:
        """Write the fitted arrays (npz, no pickle) atomically: a concurrent twin may write the same file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.npz")
        try:
            savez: Any = np.savez  # its stubs type keyword arrays as flags
            savez(tmp, **self.arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load_arrays(cls, path: Path, settings: dict[str, Any]) -> AudioFeaturesForward:
        with np.load(path, allow_pickle=False) as arrays:
            return cls(settings, {name: arrays[name] for name in _ARRAYS})

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the fitted arrays under ``directory``; the settings :func:`load` needs."""
        self.save_arrays(Path(directory) / ARRAYS_FILE)
        return {**self.settings, "module": MODULE, "arrays": ARRAYS_FILE}


def load(directory: str | Path, settings: dict[str, Any]) -> AudioFeaturesForward:
    """The fitted model :meth:`AudioFeaturesForward.save` wrote to ``directory``."""
    return AudioFeaturesForward.load_arrays(Path(directory) / settings.get("arrays", ARRAYS_FILE), settings)
