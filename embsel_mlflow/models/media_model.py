"""What image and audio candidates share: one encode loop, and the serving contract.

The serving contract (kinds <-> ``tracking/embedding_pyfunc.py``)
-----------------------------------------------------------------
A media model (any :class:`MediaModel`) has ``serving_backend = "media"`` and
``save_serving(directory) -> settings``, which writes its weights under ``directory``
(safetensors or ``.npz``, never pickle) and returns a JSON-able dict:

- ``"module"`` (required): the name of a SELF-CONTAINED module ``embsel_mlflow/models/<module>.py``
  (no embsel_mlflow import; numpy, torch, transformers, Pillow, ... only). It has
  ``load(directory, settings)`` returning an object whose ``encode(inputs, modality)`` gives a
  float32 ``(len(inputs), dim)`` array; ``inputs`` are DECODED: prompted texts, RGB ``PIL``
  images (``media_io.open_image``), or mono float32 waveforms at ``settings["sample_rate"]``
  (``media_io.read_audio``). The evaluation model encodes through the same object
  (:func:`encode_items`), so a served model embeds exactly as evaluation did.
- ``"kind"``: the ``model.kind`` that loads ``directory`` again as a candidate with
  ``model.name_or_path=<directory>`` (``from_run`` candidates, monitor's registered model).
- ``"modalities"``: the modalities ``predict`` accepts (``["text", "image"]``, ``["audio"]``, ...).
- ``"requirements"``: pip names the served model needs besides mlflow, numpy and pandas
  (pinned to the installed versions when it is logged).
- ``"sample_rate"`` (audio kinds): the rate served audio is decoded to.
- anything else the module's ``load`` reads (``normalize``, ``max_length``, ...).

``tracking.embedding_model.log_embedding_model`` ships ``media_io.py`` and the module beside the
pyfunc (``code_paths``); the pyfunc decodes paths or base64 with ``media_io``, applies role
prompts to texts, batches by ``model.batch_size``, and calls the module's ``encode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from embsel_mlflow.errors import ModelError
from embsel_mlflow.media.items import AUDIO, IMAGE, TEXT, Media, batches, modality_of
from embsel_mlflow.models.base import PretrainedCandidate, as_float32, prompted_texts

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.models.resolve import ResolvedModel

MEDIA_BACKEND = "media"  # settings["backend"] of a logged media model


class MediaForward(Protocol):
    """What a self-contained forward module's ``load`` returns."""

    def encode(self, inputs: list[Any], modality: str) -> np.ndarray: ...


def encode_items(
    forward: MediaForward,
    items: Sequence[str | Media],
    *,
    cfg: ModelConfig,
    role: str | None,
    modalities: frozenset[str],
    dim: int,
    sample_rate: int | None = None,
) -> np.ndarray:
    """Embed ``items`` (one modality) with ``forward``, one batch of ``cfg.batch_size`` decoded at a time.

    Texts get ``cfg``'s prompt for ``role``; images and audio are decoded per batch
    (``media.decode``), so a large set is never held decoded. An input of a modality the model
    does not take is a one-line ModelError naming the ones it does.
    """
    from embsel_mlflow.media.decode import load_audio, load_images

    if isinstance(items, str):
        raise TypeError("encode() takes a sequence of inputs, not a single string")
    modality = modality_of(items)
    if modality not in modalities:
        raise ModelError(
            f"model '{cfg.name}' ({cfg.kind}) embeds {' and '.join(sorted(modalities))}, not {modality}"
        )
    if len(items) == 0:
        return np.empty((0, dim), dtype=np.float32)
    inputs: Sequence[Any] = prompted_texts(cfg, items, role) if modality == TEXT else items  # type: ignore[arg-type]
    parts = []
    for batch in batches(inputs, cfg.batch_size):
        if modality == IMAGE:
            decoded: list[Any] = load_images(batch)
        elif modality == AUDIO:
            if sample_rate is None:
                raise ModelError(f"model '{cfg.name}' has no sample rate to decode audio at")
            decoded = load_audio(batch, sample_rate=sample_rate)
        else:
            decoded = list(batch)
        parts.append(as_float32(forward.encode(decoded, modality), len(decoded)))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class MediaModel(PretrainedCandidate):
    """Base of a pre-trained media candidate over a forward object (``self.forward``).

    Subclasses set ``modalities``, ``forward``, ``_cfg`` and ``_source`` and implement
    :meth:`save_serving`; ``encode`` batches, decodes and prompts as :func:`encode_items` says.
    """

    serving_backend: ClassVar[str] = MEDIA_BACKEND
    modalities: ClassVar[frozenset[str]] = frozenset()
    sample_rate: int | None = None  # audio kinds: the rate clips are decoded to
    forward: Any
    _cfg: ModelConfig
    _source: ResolvedModel

    def encode(
        self, texts: Sequence[str | Media], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        return encode_items(
            self.forward,
            texts,
            cfg=self._cfg,
            role=role,
            modalities=self.modalities,
            dim=self.embedding_dim,
            sample_rate=self.sample_rate,
        )

    def save_serving(self, directory: Path) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def embedding_dim(self) -> int:
        return int(self.forward.embedding_dim)

    @property
    def config(self) -> ModelConfig:
        return self._cfg

    @property
    def source(self) -> ResolvedModel:
        return self._source

    @property
    def device(self) -> str:
        return str(getattr(self.forward, "device", "cpu"))

    def prompt(self, role: str | None) -> str | None:
        """The prompt ``encode(role=role)`` prepends to texts (for the logged settings), or None."""
        prompts = {None: self._cfg.symmetric_prompt, "query": self._cfg.query_prompt}
        return prompts.get(role, self._cfg.document_prompt)
