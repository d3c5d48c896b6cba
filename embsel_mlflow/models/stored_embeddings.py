"""Stored-embedding variants: truncated (Matryoshka), int8 and binary embeddings.

The model's float output is cut to ``truncate_dim`` (and re-normalised), then stored as
int8 (per-dimension ranges calibrated on calibration texts, sentence-transformers'
``quantize_embeddings``) or as sign bits. Scoring follows what is stored: cosine on the
dequantized int8 vectors, Hamming distance on bits. Binary vectors are handed to the tasks as
+-1 floats, whose cosine is exactly ``1 - 2 * hamming / dim``, so every task (STS, pairs,
classification, clustering) ranks by Hamming distance without a task of its own. Retrieval
searches the quantized corpus itself (``evaluation/quantized_search.py``, handed to
``StoredEmbeddingEncoder`` by whoever builds it). The arithmetic is ``stored_embedding_math.py``,
shared with the served pyfunc.

The embedding cache holds the model's float output (``StoredEmbeddingEncoder`` wraps the
cached model), so every stored variant reuses the fp32 variant's cached embeddings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embsel_mlflow.config import EmbeddingDtype
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.models import stored_embedding_math as math

if TYPE_CHECKING:
    from embsel_mlflow.config import VariantConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media import Media
    from embsel_mlflow.models.calibration import CalibrationTexts

# ``(format, float query embeddings, k)`` -> a top-k search over quantized documents
# (evaluation/quantized_search.py's QuantizedTopK; given by the layer that builds candidates).
QuantizedSearch = Callable[["EmbeddingFormat", np.ndarray, int], Any]


@dataclass(frozen=True)
class EmbeddingFormat:
    """How embeddings are stored: dtype, kept dimensions and (int8) calibrated ranges."""

    dtype: EmbeddingDtype
    truncate_dim: int | None = None
    ranges: np.ndarray | None = None  # (2, dim) float32 per-dimension min and max
    rescore_multiplier: int = 0  # binary retrieval: rescore top k x this against int8 documents
    calibration: dict[str, Any] | None = None  # what calibrated the ranges (CalibrationTexts.describe)

    @property
    def quantized(self) -> bool:
        return EmbeddingDtype(self.dtype) is not EmbeddingDtype.float32

    @property
    def keeps_int8(self) -> bool:
        """int8 codes are kept: the stored vectors, or the rescoring copy of binary retrieval."""
        dtype = EmbeddingDtype(self.dtype)
        return dtype is EmbeddingDtype.int8 or (
            dtype is EmbeddingDtype.binary and self.rescore_multiplier > 0
        )

    def truncate(self, embeddings: np.ndarray) -> np.ndarray:
        """The first ``truncate_dim`` dimensions, re-normalised (a Matryoshka prefix)."""
        return math.truncate(embeddings, self.truncate_dim)

    def int8(self, embeddings: np.ndarray) -> np.ndarray:
        """int8 codes with the calibrated ranges (sentence-transformers' quantize_embeddings)."""
        assert self.ranges is not None
        return math.int8_codes(embeddings, self.ranges)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Bucket centres of int8 codes: the float vectors int8 scoring compares."""
        assert self.ranges is not None
        return math.dequantize(codes, self.ranges)

    @staticmethod
    def bits(embeddings: np.ndarray) -> np.ndarray:
        """Sign bits packed 8 per byte (sentence-transformers' "ubinary")."""
        return math.sign_bits(embeddings)

    def to_scored(self, embeddings: np.ndarray) -> np.ndarray:
        """The float vectors a task compares: truncated, then int8-dequantized or +-1 bits."""
        return math.to_scored(embeddings, EmbeddingDtype(self.dtype).value, self.truncate_dim, self.ranges)

    def bytes_per_vector(self, dim: int) -> int:
        """Bytes one stored (searched) vector takes."""
        return math.bytes_per_vector(EmbeddingDtype(self.dtype).value, dim)

    def identity(self) -> dict[str, Any]:
        """What changes scores: dtype, dimensions, rescoring and the ranges' digest."""
        found: dict[str, Any] = {"embedding_dtype": EmbeddingDtype(self.dtype).value}
        if self.truncate_dim is not None:
            found["truncate_dim"] = self.truncate_dim
        if EmbeddingDtype(self.dtype) is EmbeddingDtype.binary:
            found["rescore_multiplier"] = self.rescore_multiplier
        if self.ranges is not None:
            found["ranges_sha256"] = hashlib.sha256(self.ranges.astype(np.float32).tobytes()).hexdigest()[:16]
            found["calibration"] = self.calibration
        return found


def embedding_format(
    variant: VariantConfig, dim: int, calibration: CalibrationTexts | None, encode: Any
) -> EmbeddingFormat | None:
    """The stored format ``variant`` asks for (None: plain float32), int8 ranges calibrated.

    ``encode(texts)`` embeds calibration texts with the (cached) float model.
    """
    dtype = EmbeddingDtype(variant.embedding_dtype)
    if dtype is EmbeddingDtype.float32 and variant.truncate_dim is None:
        return None
    if variant.truncate_dim is not None and not 1 <= variant.truncate_dim <= dim:
        raise ConfigError(
            f"model.variant.truncate_dim={variant.truncate_dim} must be between 1 and the model's "
            f"{dim} dimensions"
        )
    if variant.rescore_multiplier < 0:
        raise ConfigError(f"model.variant.rescore_multiplier must be >= 0, got {variant.rescore_multiplier}")
    rescore = variant.rescore_multiplier if dtype is EmbeddingDtype.binary else 0
    fmt = EmbeddingFormat(dtype, variant.truncate_dim, rescore_multiplier=rescore)
    if not fmt.keeps_int8:
        return fmt
    if calibration is None:
        raise ConfigError(
            "int8 embeddings need calibration texts; set model.variant.calibration.path or evaluate a "
            "dataset with a train split"
        )
    calibrated = fmt.truncate(np.asarray(encode(calibration.texts), dtype=np.float32))
    ranges = np.vstack([calibrated.min(axis=0), calibrated.max(axis=0)]).astype(np.float32)
    return EmbeddingFormat(dtype, variant.truncate_dim, ranges, rescore, calibration.describe())


class StoredEmbeddingEncoder:
    """A candidate whose embeddings are stored truncated, int8 or binary (see the module doc)."""

    def __init__(self, base: Any, fmt: EmbeddingFormat, search: QuantizedSearch) -> None:
        self._base = base
        self.format = fmt
        self._search = search

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        return self.format.to_scored(self._base.encode(texts, role=role, show_progress=show_progress))

    @property
    def float_encoder(self) -> Any:
        """The truncated float embeddings (retrieval quantizes documents itself, rescoring needs floats)."""
        return _Truncated(self._base, self.format)

    def stored_search(self, query_embeddings: np.ndarray, k: int) -> Any:
        """A top-k search over quantized documents (None: float32 documents, the usual search)."""
        if not self.format.quantized:
            return None
        return self._search(self.format, query_embeddings, k)

    @property
    def inner(self) -> StoredEmbeddingEncoder:
        """The same variant without the embedding cache (what efficiency times)."""
        base_inner = getattr(self._base, "inner", None)
        return self if base_inner is None else StoredEmbeddingEncoder(base_inner, self.format, self._search)

    def for_dataset(self, data: TaskData) -> Any:
        ready = self._base.for_dataset(data)
        return self if ready is self._base else StoredEmbeddingEncoder(ready, self.format, self._search)

    @property
    def embedding_dim(self) -> int:
        return self.format.truncate_dim or int(self._base.embedding_dim)

    @property
    def bytes_per_vector(self) -> int:
        return self.format.bytes_per_vector(self.embedding_dim)

    @property
    def identity(self) -> dict[str, Any]:
        return {**self._base.identity, "stored_embeddings": self.format.identity()}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._base, name)


@dataclass
class _Truncated:
    base: Any
    format: EmbeddingFormat

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        return self.format.truncate(self.base.encode(texts, role=role, show_progress=show_progress))
