"""What the audio kinds share on the evaluation side: one encode over a self-contained forward.

Each audio kind keeps its forward pass in a self-contained module (``clap_forward``,
``resemblyzer_forward``, ``audio_features_forward``) that the served model ships too; the model
here checks the inputs' modality, decodes one batch of clips at a time (``media.decode``: errors
name the row and the file) and hands the decoded clips to that forward. So evaluation and
serving run the same code on the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from embsel_mlflow.errors import ModelError
from embsel_mlflow.media.decode import load_audio
from embsel_mlflow.media.items import AUDIO, TEXT, Media, batches, modality_of
from embsel_mlflow.models.base import as_float32

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig


class AudioForward(Protocol):
    """The object a forward module's ``load`` returns (and the evaluation side builds)."""

    settings: dict[str, Any]

    @property
    def sample_rate(self) -> int: ...

    def encode(self, inputs: list[Any], modality: str, role: str | None = None) -> np.ndarray: ...

    def save(self, directory: Path) -> dict[str, Any]: ...


F = TypeVar("F", bound=AudioForward)


class AudioForwardModel(Generic[F]):
    """Defaults of an audio kind's model; subclasses set ``_forward``, ``modalities`` and the report."""

    serving_backend = "media"  # tracking/embedding_pyfunc: saved with save_serving, run by its module
    modalities: frozenset[str] = frozenset({AUDIO})
    _cfg: ModelConfig
    _forward: F | None

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        """Embed texts or audio clips (one modality per call), decoding one batch of clips at a time."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of inputs, not a single string")
        items = list(texts)
        forward = self._ready()
        if not items:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        modality = modality_of(items)
        if modality not in self.modalities:
            kinds = " and ".join(sorted(self.modalities))
            raise ModelError(
                f"model '{self._cfg.name}' (kind {self._cfg.kind}) embeds {kinds} only, not {modality}"
            )
        if modality == TEXT:
            return as_float32(forward.encode(items, TEXT, role=role), len(items))
        parts = [
            forward.encode(load_audio(batch, sample_rate=forward.sample_rate), AUDIO, role=role)
            for batch in batches(items, self._cfg.batch_size)
        ]
        return as_float32(np.concatenate(parts), len(items))

    def save_serving(self, directory: Path) -> dict[str, Any]:
        """Write what the served model loads under ``directory``; its settings, with ``"module"``."""
        return self._ready().save(Path(directory))

    @property
    def embedding_dim(self) -> int:
        raise NotImplementedError

    def _ready(self) -> F:
        if self._forward is None:
            raise ModelError(f"model '{self._cfg.name}' is not fitted yet: call for_dataset(data) first")
        return self._forward


def serving_settings(cfg: ModelConfig) -> dict[str, Any]:
    """The settings every audio forward takes from the model config (prompts, batching, normalising)."""
    return {
        "normalize": bool(cfg.normalize),
        "batch_size": int(cfg.batch_size),
        "prompts": {
            "symmetric": cfg.symmetric_prompt,
            "query": cfg.query_prompt,
            "document": cfg.document_prompt,
        },
    }
