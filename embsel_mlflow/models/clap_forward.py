"""A CLAP model (transformers ``ClapModel`` + ``ClapProcessor``): the forward pass of evaluation and serving.

SELF-CONTAINED on purpose (numpy, torch, transformers; no embsel_mlflow import): a registered
model ships this file beside its pyfunc (``code_paths``) and calls :func:`load` on the directory
:meth:`ClapForward.save` wrote. Both sides hand it decoded inputs (``media_io``: mono float32 at
:attr:`ClapForward.sample_rate`) and prompted texts.

Texts go through ``get_text_features``, clips (mono, at the feature extractor's rate: 48 kHz)
through ``get_audio_features``. The feature extractor crops clips longer than its
``max_length_s`` at random (``rand_trunc``, ``fusion``); it is run one clip at a time under a
fixed seed, so a clip's embedding never depends on its batch or on the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MODULE = "clap_forward"
_SEED = 0  # the crop of a clip longer than max_length_s (rand_trunc, fusion)
DEFAULT_SETTINGS: dict[str, Any] = {
    "normalize": True,
    "batch_size": 8,
    "max_seq_length": None,
    "max_length_s": None,
    "truncation": None,
    "precision": "fp32",
}


class ClapForward:
    """Texts and mono clips in, one shared embedding space out (``projection_dim`` wide)."""

    modalities = ("text", "audio")

    def __init__(self, model: Any, processor: Any, settings: dict[str, Any]) -> None:
        self.settings = {**DEFAULT_SETTINGS, **settings}
        self.model = model.eval()
        self.processor = processor
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        # model.clap overrides become the extractor's own: saved with it, so a reload cuts alike
        if self.settings["max_length_s"]:
            self.feature_extractor.max_length_s = int(self.settings["max_length_s"])
            self.feature_extractor.nb_max_samples = self.feature_extractor.max_length_s * self.sample_rate
        if self.settings["truncation"]:
            self.feature_extractor.truncation = self.settings["truncation"]

    @classmethod
    def from_pretrained(
        cls, path_or_id: str, settings: dict[str, Any], *, device: str = "cpu", **hub_kwargs: Any
    ) -> ClapForward:
        """Load model and processor (safetensors only, no remote code unless ``hub_kwargs`` say so)."""
        import torch
        from transformers import ClapModel, ClapProcessor

        settings = {**DEFAULT_SETTINGS, **settings}
        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        model_kwargs: dict[str, Any] = {"use_safetensors": True, "dtype": dtypes[settings["precision"]]}
        model_kwargs.update(hub_kwargs.pop("model_kwargs", None) or {})
        with _quiet():
            processor = ClapProcessor.from_pretrained(path_or_id, **hub_kwargs)
            model: Any = ClapModel.from_pretrained(path_or_id, **hub_kwargs, **model_kwargs)
        return cls(model.to(device), processor, settings)

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def embedding_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> str:
        return str(self.model.device)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        limit = self.settings["max_seq_length"] or self.tokenizer.model_max_length
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        with torch.inference_mode():
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.model.device),
                attention_mask=tokens["attention_mask"].to(self.model.device),
            )
        return self._finished(features)

    def embed_clips(self, clips: list[np.ndarray]) -> np.ndarray:
        """One embedding per mono clip at :attr:`sample_rate` (padded or cropped as the extractor does)."""
        import torch

        inputs = [self._features(np.asarray(clip, dtype=np.float32)) for clip in clips]
        features = torch.cat([item["input_features"] for item in inputs])
        is_longer = torch.cat([item["is_longer"] for item in inputs])
        with torch.inference_mode():
            output = self.model.get_audio_features(
                input_features=features.to(self.model.device, self.model.dtype),
                is_longer=is_longer.to(self.model.device),
            )
        return self._finished(output)

    def _features(self, clip: np.ndarray) -> Any:
        """The extractor's mel input of one clip, its random crop drawn from a fixed seed."""
        with _seeded(_SEED):
            return self.feature_extractor(clip, sampling_rate=self.sample_rate, return_tensors="pt")

    def _finished(self, output: Any) -> np.ndarray:
        """The projected features as float32 (transformers 5 returns them as the pooler output)."""
        features = getattr(output, "pooler_output", output)
        embeddings = features.float().cpu().numpy().astype(np.float32, copy=False)
        if self.settings["normalize"]:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(embeddings, dtype=np.float32)

    def encode(self, inputs: list[Any], modality: str) -> np.ndarray:
        """Texts (already prompted by the caller) or decoded clips (mono float32 at :attr:`sample_rate`)."""
        size = int(self.settings["batch_size"])
        if modality == "text":
            parts = [self.embed_texts([str(text) for text in batch]) for batch in _batches(inputs, size)]
        elif modality == "audio":
            parts = [self.embed_clips(batch) for batch in _batches(inputs, size)]
        else:
            raise ValueError(f"a CLAP model embeds text and audio, not {modality}")
        return np.concatenate(parts) if parts else np.empty((0, self.embedding_dim), dtype=np.float32)

    def save(self, directory: Path) -> dict[str, Any]:
        """Write model (safetensors) and processor under ``directory``; the settings :func:`load` needs."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with _quiet():
            self.model.save_pretrained(directory)  # safetensors: the only format transformers 5 writes
            self.processor.save_pretrained(directory)
        return {**self.settings, "module": MODULE}


def load(directory: str | Path, settings: dict[str, Any]) -> ClapForward:
    """The model :meth:`ClapForward.save` wrote to ``directory`` (local files only, no remote code)."""
    return ClapForward.from_pretrained(
        str(directory), settings, local_files_only=True, trust_remote_code=False
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No transformers progress bars (loading, writing shards): the caller's console is its own."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """numpy's global generator (the one the feature extractor draws from) seeded, then restored."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + max(1, size)] for start in range(0, len(items), max(1, size))]
