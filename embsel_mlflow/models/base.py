"""What every candidate model offers, whatever its kind.

``evaluate`` and ``select`` only talk to these protocols: a transformer encoder, a static
model2vec model, LSA, an API endpoint and BM25 all look the same from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.data.task_data import TaskData
    from embsel_mlflow.media import Media
    from embsel_mlflow.models.resolve import ResolvedModel

# Origins of candidates that are not loaded from model files (ResolvedModel.origin).
FITTED = "fitted"  # fitted on the task's own texts (LSA)
LEXICAL = "lexical"  # no model at all (BM25)
API = "api"  # served by an HTTP endpoint
DISTILLED = "distilled"  # distilled locally from another model (static)


@runtime_checkable
class EmbeddingModel(Protocol):
    """A candidate: texts in, a (len(texts), dim) float32 array out, plus what to report about it.

    ``encode`` is the evaluation tasks' ``TextEncoder`` protocol. ``for_dataset`` returns the
    candidate ready for one dataset (the same object for pre-trained models; a fitted copy for
    LSA; an error for BM25 on a non-retrieval task). Call it before evaluating.
    """

    @property
    def registrable(self) -> bool:
        """Can be logged as an MLflow model, registered and monitored."""
        ...

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray: ...

    def for_dataset(self, data: TaskData) -> EmbeddingModel: ...

    @property
    def source(self) -> ResolvedModel: ...

    @property
    def device(self) -> str: ...

    @property
    def embedding_dim(self) -> int: ...

    @property
    def num_parameters(self) -> int: ...

    @property
    def identity(self) -> dict[str, Any]: ...

    @property
    def disk_size_bytes(self) -> int | None: ...


@runtime_checkable
class Ranker(Protocol):
    """A retrieval capability: rank a corpus for each query without embeddings (BM25).

    The retrieval task uses ``rank`` instead of encoding + cosine search when a candidate has
    it; scoring then follows the same path as for embedding models.
    """

    def rank(
        self, query_texts: Sequence[str], corpus_texts: Sequence[str], top_k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, corpus indices), each (num_queries, min(top_k, len(corpus))), best first."""
        ...


class PretrainedCandidate:
    """Defaults for candidates whose weights do not depend on the dataset."""

    registrable = True

    def for_dataset(self, data: TaskData) -> Self:
        """Pre-trained models are used as they are on every dataset."""
        return self

    @property
    def disk_size_bytes(self) -> int | None:
        """Bytes of the weight files the model was loaded from (None when not on local disk)."""
        source: ResolvedModel = self.source  # type: ignore[attr-defined]
        return weights_size_bytes(source)


_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weights_size_bytes(source: ResolvedModel) -> int | None:
    """Total size of the weight files of a local model directory or a cached Hub snapshot."""
    sizes = [path.stat().st_size for path in _weight_files(source)]
    return sum(sizes) if sizes else None


def weights_num_parameters(source: ResolvedModel) -> int | None:
    """Parameters in the ``.safetensors`` files of a local model or cached snapshot, counted from
    their headers (no weights are read); None when there are none, or a header is unreadable.
    Equals the loaded model's count for the models we ship configs for (tests/test_warm_runs.py)."""
    import json
    import math
    import struct

    files = [path for path in _weight_files(source) if path.suffix == ".safetensors"]
    if not files:
        return None
    total = 0
    try:
        for path in files:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
            # floating tensors only: integer ones are buffers (e.g. BERT's saved position_ids)
            total += sum(
                math.prod(entry["shape"])
                for key, entry in header.items()
                if key != "__metadata__" and str(entry["dtype"]).startswith(("F", "BF"))
            )
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    return total


def _weight_files(source: ResolvedModel) -> list[Path]:
    """The weight files of a local model directory or a cached Hub snapshot (not its ONNX exports)."""
    from embsel_mlflow.models.resolve import HUB

    directory = Path(source.path_or_id) if source.origin != HUB else hub_snapshot(source.path_or_id)
    if directory is None or not directory.is_dir():
        return []
    return [
        path
        for path in directory.rglob("*")
        if path.suffix in _WEIGHT_SUFFIXES and path.is_file() and "onnx" not in path.parts
    ]


def hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot of a Hub model (no network), or None."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, or any hub-side error: the size is simply unknown
        return None


def text_inputs(texts: Sequence[str | Media], model: str) -> Sequence[str]:
    """``texts`` when they are all texts; a one-line ModelError for an image or a clip.

    The modality guard refuses a text-only candidate on image or audio data before a run starts;
    this is the model's own check, for a caller that skipped it (a notebook, a plug-in family).
    """
    from embsel_mlflow.errors import ModelError
    from embsel_mlflow.media import Media

    for item in texts:
        if isinstance(item, Media):
            raise ModelError(
                f"model '{model}' embeds text only, but was given {item.modality} ({item.label}): "
                "use a candidate kind that embeds it (embsel select --help lists the kinds)"
            )
    return texts  # type: ignore[return-value]  # checked above: every item is a str


def as_float32(embeddings: Any, count: int) -> np.ndarray:
    """A C-contiguous float32 (count, dim) array (no copy when it already is one)."""
    array = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    if array.ndim != 2 or array.shape[0] != count:
        raise ValueError(f"expected {count} embeddings, got an array of shape {array.shape}")
    return array


def prompted_texts(cfg: ModelConfig, texts: Sequence[str], role: str | None) -> list[str]:
    """``texts`` with the prompt ``cfg`` sets for ``role`` prepended (for candidates without ST prompts)."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single string")
    prompts = {None: cfg.symmetric_prompt, "query": cfg.query_prompt, "document": cfg.document_prompt}
    if role not in prompts:
        raise ValueError(f"role must be one of {tuple(prompts)}, got {role!r}")
    prompt = prompts[role] or ""
    return [prompt + text for text in texts]


def encode_prompted(
    cfg: ModelConfig,
    texts: Sequence[str],
    role: str | None,
    embed: Callable[[list[str]], Any],
    embedding_dim: Callable[[], int],
) -> np.ndarray:
    """``encode()`` of a candidate without ST prompts: ``cfg``'s prompt for ``role``, then ``embed``.

    No texts give a (0, dim) array without calling ``embed``; rows come back float32 and, when
    ``cfg.normalize``, L2-normalised.
    """
    prompted = prompted_texts(cfg, texts, role)
    if not prompted:
        return np.empty((0, embedding_dim()), dtype=np.float32)
    embeddings = as_float32(embed(prompted), len(prompted))
    return l2_normalized(embeddings) if cfg.normalize else embeddings


def l2_normalized(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
