"""LSA: TF-IDF + truncated SVD, fitted on each dataset's own unlabelled texts (scikit-learn)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config.schema import LsaConfig, TaskType
from embsel_mlflow.errors import ConfigError, DataError, ModelError
from embsel_mlflow.models.base import FITTED
from embsel_mlflow.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from embsel_mlflow.config.schema import ModelConfig
    from embsel_mlflow.data.task_data import TaskData

FIT_ON = ("auto",)


def fit_texts(data: TaskData) -> tuple[list[str], str]:
    """The texts LSA is fitted on for ``data`` and what they are; never a score or a label.

    Retrieval: the corpus. Classification: the train split's texts. STS, pair classification
    and clustering have no train texts loaded, so the evaluated texts themselves (unsupervised).
    """
    ex: Any = data.examples
    task = TaskType(data.task)
    if task is TaskType.retrieval:
        return list(ex.corpus.values()), "corpus"
    if task is TaskType.classification:
        return list(ex.train_texts), "train texts"
    if task in (TaskType.sts, TaskType.pair_classification):
        return list(dict.fromkeys([*ex.s1, *ex.s2])), f"{data.split} sentences (no scores or labels)"
    if task is TaskType.clustering:
        return list(dict.fromkeys(ex.texts)), f"{data.split} texts (no labels)"
    raise DataError(f"LSA cannot be fitted for a {task.value} task")  # pragma: no cover


class LsaModel:
    """TF-IDF weighting then a truncated SVD; unfitted until :meth:`for_dataset`."""

    registrable = False  # fitted per dataset: there is no one model to register
    device = "cpu"

    def __init__(self, cfg: ModelConfig, *, pipeline: Pipeline | None = None, fitted_on: str = "") -> None:
        self._cfg = cfg
        self._settings = cfg.lsa or LsaConfig()
        if self._settings.fit_on not in FIT_ON:
            raise ConfigError(
                f"model.lsa.fit_on={self._settings.fit_on!r} is not supported; use one of {FIT_ON}"
            )
        if self._settings.n_components < 1:
            raise ConfigError(f"model.lsa.n_components must be >= 1, got {self._settings.n_components}")
        self._pipeline = pipeline
        self._fitted_on = fitted_on
        self._digest: str | None = None

    def for_dataset(self, data: TaskData) -> LsaModel:
        """A copy fitted on ``data``'s corpus or train texts (see :func:`fit_texts`)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline

        texts, what = fit_texts(data)
        s = self._settings
        vectorizer = TfidfVectorizer(
            sublinear_tf=s.sublinear_tf,
            max_features=s.max_features,
            ngram_range=(1, s.ngram_max),
            min_df=s.min_df,
            dtype=np.float32,
        )
        try:
            vocabulary_size = len(vectorizer.fit(texts).vocabulary_)
        except ValueError as err:  # e.g. every text empty or only stop words
            raise DataError(f"dataset '{data.name}': cannot fit LSA on its {what}: {err}") from err
        # The SVD needs fewer components than terms; small data gets a smaller dimension.
        components = max(1, min(s.n_components, vocabulary_size - 1, len(texts) - 1))
        svd = TruncatedSVD(n_components=components, algorithm="randomized", random_state=s.seed)
        pipeline = make_pipeline(vectorizer, svd)
        pipeline.fit(texts)
        fitted = LsaModel(self._cfg, pipeline=pipeline, fitted_on=f"{data.name} {what} ({len(texts)} texts)")
        fitted._digest = _texts_digest(texts)
        return fitted

    def encode(
        self, texts: Sequence[str], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        if self._pipeline is None:
            raise ModelError(f"LSA model '{self._cfg.name}' is not fitted yet: call for_dataset(data) first")
        if len(texts) == 0:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        return np.asarray(self._pipeline.transform(list(texts)), dtype=np.float32)

    @property
    def fitted_on(self) -> str:
        """What the model was fitted on, e.g. 'scifact corpus (5183 texts)'."""
        return self._fitted_on

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel("scikit-learn TfidfVectorizer + TruncatedSVD", FITTED, self._digest)

    @property
    def embedding_dim(self) -> int:
        if self._pipeline is None:
            return self._settings.n_components
        return int(self._pipeline[-1].n_components)

    @property
    def num_parameters(self) -> int:
        """SVD components plus IDF weights (0 before fitting)."""
        if self._pipeline is None:
            return 0
        vectorizer, svd = self._pipeline[0], self._pipeline[-1]
        return int(svd.components_.size + vectorizer.idf_.size)

    @property
    def disk_size_bytes(self) -> int | None:
        """In-memory size of the fitted arrays (the model is never written to disk)."""
        if self._pipeline is None:
            return None
        vectorizer, svd = self._pipeline[0], self._pipeline[-1]
        return int(svd.components_.nbytes + vectorizer.idf_.nbytes)

    @property
    def identity(self) -> dict[str, Any]:
        from embsel_mlflow.models.identity import model_identity

        identity = model_identity(self._cfg, self.source)
        identity["fitted_on"] = self._fitted_on
        return identity


def _texts_digest(texts: list[str]) -> str:
    """sha256 of the fit texts: two fits on the same texts give the same model (seeded SVD)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()
