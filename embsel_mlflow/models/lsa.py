"""LSA: TF-IDF + truncated SVD, fitted on each dataset's own unlabelled texts (scikit-learn)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config import LsaConfig
from embsel_mlflow.errors import ConfigError, DataError, ModelError
from embsel_mlflow.models.base import FITTED, text_inputs
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media import Media

log = logging.getLogger(__name__)
FIT_ON = ("auto",)


def fit_texts(data: TaskData) -> tuple[list[str], str]:
    """The texts LSA is fitted on for ``data`` and what they are; never a score or a label.

    The dataset's task family says (``TaskFamily.fit_texts``). Retrieval: the corpus.
    Classification: the train split's texts. STS, pair classification and clustering have no
    train texts loaded, so the evaluated texts themselves (unsupervised).
    """
    family = data.family
    if family is None:
        raise DataError(f"LSA cannot be fitted for dataset '{data.name}': it carries no task family")
    return family.fit_texts(data)


class LsaModel:
    """TF-IDF weighting then a truncated SVD; unfitted until :meth:`for_dataset`.

    A fit is kept as plain arrays (terms, idf, SVD components; no pickle) under
    ``<cache.dir>/models/lsa/`` when a cache is in use, so the same fit is never computed twice.
    """

    registrable = False  # fitted per dataset: there is no one model to register
    device = "cpu"

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        models_dir: Path | None = None,
        fit: LsaFit | None = None,
        fitted_on: str = "",
    ) -> None:
        self._cfg = cfg
        self._settings = cfg.lsa or LsaConfig()
        if self._settings.fit_on not in FIT_ON:
            raise ConfigError(
                f"model.lsa.fit_on={self._settings.fit_on!r} is not supported; use one of {FIT_ON}"
            )
        if self._settings.n_components < 1:
            raise ConfigError(f"model.lsa.n_components must be >= 1, got {self._settings.n_components}")
        self._models_dir = models_dir
        self._fit = fit
        self._fitted_on = fitted_on

    def for_dataset(self, data: TaskData) -> LsaModel:
        """A copy fitted on ``data``'s corpus or train texts (see :func:`fit_texts`)."""
        texts, what = fit_texts(data)
        texts = list(text_inputs(texts, self._cfg.name))  # images or clips: one line, never a crash
        key = hashlib.sha256(
            json.dumps(dataclasses.asdict(self._settings), sort_keys=True).encode()
            + _texts_digest(texts).encode()
        ).hexdigest()
        path = self._models_dir / "lsa" / f"{key}.npz" if self._models_dir is not None else None
        fit = LsaFit.load(path, self._settings, key) if path is not None and path.is_file() else None
        if fit is None:
            try:
                fit = LsaFit.fit(texts, self._settings, key)
            except ValueError as err:  # e.g. every text empty or only stop words
                raise DataError(f"dataset '{data.name}': cannot fit LSA on its {what}: {err}") from err
            if path is not None:
                fit.save(path)
        return LsaModel(
            self._cfg,
            models_dir=self._models_dir,
            fit=fit,
            fitted_on=f"{data.name} {what} ({len(texts)} texts)",
        )

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        if self._fit is None:
            raise ModelError(f"LSA model '{self._cfg.name}' is not fitted yet: call for_dataset(data) first")
        texts = text_inputs(texts, self._cfg.name)
        if len(texts) == 0:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        return self._fit.transform(list(texts))

    @property
    def fitted_on(self) -> str:
        """What the model was fitted on, e.g. 'scifact corpus (5183 texts)'."""
        return self._fitted_on

    @property
    def source(self) -> ResolvedModel:
        key = self._fit.key if self._fit is not None else None
        return ResolvedModel("scikit-learn TfidfVectorizer + TruncatedSVD", FITTED, key)

    @property
    def embedding_dim(self) -> int:
        return self._fit.components.shape[0] if self._fit is not None else self._settings.n_components

    @property
    def num_parameters(self) -> int:
        """SVD components plus IDF weights (0 before fitting)."""
        return int(self._fit.components.size + self._fit.idf.size) if self._fit is not None else 0

    @property
    def disk_size_bytes(self) -> int | None:
        """Size of the fitted arrays."""
        return int(self._fit.components.nbytes + self._fit.idf.nbytes) if self._fit is not None else None

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source, self._cfg.lsa)
        identity["fitted_on"] = self._fitted_on
        return identity


@dataclass
class LsaFit:
    """A fitted LSA: the TF-IDF vocabulary and idf weights, and the SVD components."""

    key: str  # sha256 of the settings and the fit texts
    vectorizer: TfidfVectorizer
    components: np.ndarray  # (dim, vocabulary size) float32

    @property
    def idf(self) -> np.ndarray:
        return self.vectorizer.idf_

    def transform(self, texts: list[str]) -> np.ndarray:
        """TruncatedSVD.transform of the TF-IDF vectors: a sparse x dense product."""
        return np.asarray(self.vectorizer.transform(texts) @ self.components.T, dtype=np.float32)

    @classmethod
    def fit(cls, texts: list[str], settings: LsaConfig, key: str) -> LsaFit:
        from sklearn.decomposition import TruncatedSVD

        vectorizer = _vectorizer(settings)
        matrix = vectorizer.fit_transform(texts)
        # The SVD needs fewer components than terms; small data gets a smaller dimension.
        components = max(1, min(settings.n_components, matrix.shape[1] - 1, len(texts) - 1))
        svd = TruncatedSVD(n_components=components, algorithm="randomized", random_state=settings.seed)
        svd.fit(matrix)
        return cls(key, vectorizer, np.asarray(svd.components_, dtype=np.float32))

    def save(self, path: Path) -> None:
        """Write the arrays (no pickle) atomically: a concurrent twin may write the same file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}.npz")
        try:
            np.savez(tmp, terms=np.asarray(terms, dtype=str), idf=self.idf, components=self.components)
            os.replace(tmp, path)
        except OSError as err:  # a read-only or full disk only costs a refit next time
            log.warning("could not keep the LSA fit in %s: %s", path, err)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, settings: LsaConfig, key: str) -> LsaFit | None:
        """The fit stored at ``path``, or None if it cannot be read (then it is refitted)."""
        try:
            with np.load(path, allow_pickle=False) as arrays:
                terms, idf, components = arrays["terms"], arrays["idf"], arrays["components"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            log.warning("ignoring unreadable LSA fit %s: %s", path, err)
            return None
        if not (len(terms) == len(idf) == components.shape[1]):
            return None
        vectorizer = _vectorizer(settings, vocabulary={str(term): i for i, term in enumerate(terms)})
        vectorizer.idf_ = idf
        return cls(key, vectorizer, components.astype(np.float32, copy=False))


def _vectorizer(settings: LsaConfig, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        sublinear_tf=settings.sublinear_tf,
        max_features=settings.max_features,
        ngram_range=(1, settings.ngram_max),
        min_df=settings.min_df,
        dtype=np.float32,
        vocabulary=vocabulary,
    )


def _texts_digest(texts: list[str]) -> str:
    """sha256 of the fit texts: two fits on the same texts give the same model (seeded SVD)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()
