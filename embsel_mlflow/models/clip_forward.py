"""The forward pass of an image-text dual encoder (CLIP, SigLIP): texts and decoded images in, embeddings out.

One encode path for evaluation (``models/clip.py``) and for the served model: the pyfunc of a
logged ``kind=clip`` model ships this file beside itself (``code_paths``) and calls
:func:`load`, so this module imports nothing of embsel_mlflow (numpy, torch and transformers only).

Texts go through the processor's tokenizer and ``get_text_features``, images (RGB ``PIL``
images, decoded by the caller) through its image processor and ``get_image_features``; with
``normalize`` the rows are L2-normalised. SigLIP was trained on texts padded to the full
length (its text tower pools the last position), so its texts are padded to ``max_length``;
CLIP pools at the end-of-text token and pads to the longest text of a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TEXT = "text"
IMAGE = "image"
# Pinned so evaluation and serving preprocess alike whether or not torchvision is installed
# (its resize differs from Pillow's in the last bits).
IMAGE_BACKEND = "pil"
_DTYPES = ("fp32", "fp16", "bf16")
_FULL_LENGTH_PADDING = ("siglip", "siglip2")


def load(directory: str | Path, settings: dict[str, Any]) -> ClipForward:
    """The model saved in ``directory`` (``save_pretrained``: safetensors weights + processor)."""
    return ClipForward.from_pretrained(str(directory), settings, local_files_only=True)


class ClipForward:
    """A transformers dual encoder and its processor, encoding one modality per call."""

    def __init__(self, model: Any, processor: Any, settings: dict[str, Any], *, device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.normalize = bool(settings.get("normalize", True))
        config = model.config
        text_positions = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
        tokenizer_limit = getattr(processor.tokenizer, "model_max_length", None)
        limits = [
            int(limit)
            for limit in (settings.get("max_length"), text_positions, tokenizer_limit)
            if isinstance(limit, int) and 0 < limit < 1_000_000
        ]
        self.max_length = min(limits) if limits else 77
        self.padding: bool | str = "max_length" if config.model_type in _FULL_LENGTH_PADDING else True

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, settings: dict[str, Any], *, device: str = "cpu", **hub_kwargs: Any
    ) -> ClipForward:
        """Load with the Auto classes: safetensors only, no remote code unless ``hub_kwargs`` say so."""
        import torch
        from transformers import AutoModel, AutoProcessor

        precision = settings.get("precision", "fp32")
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {_DTYPES}, got {precision!r}")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        hub_kwargs.setdefault("trust_remote_code", False)
        model = AutoModel.from_pretrained(name_or_path, use_safetensors=True, dtype=dtype, **hub_kwargs)
        if not (hasattr(model, "get_text_features") and hasattr(model, "get_image_features")):
            raise ValueError(
                f"{type(model).__name__} is not an image-text dual encoder "
                "(no get_text_features / get_image_features)"
            )
        processor = AutoProcessor.from_pretrained(name_or_path, backend=IMAGE_BACKEND, **hub_kwargs)
        if not (hasattr(processor, "tokenizer") and hasattr(processor, "image_processor")):
            raise ValueError(f"{type(processor).__name__} has no tokenizer and image processor")
        return cls(model, processor, settings, device=device)

    @property
    def embedding_dim(self) -> int:
        config = self.model.config
        # CLIP projects both towers to projection_dim; SigLIP's text head projects to the width
        # of its vision tower, whose pooled output is the image embedding
        return int(getattr(config, "projection_dim", None) or config.vision_config.hidden_size)

    def encode(self, inputs: list[Any], modality: str) -> np.ndarray:
        """(len(inputs), dim) float32: ``inputs`` are texts (prompted already) or RGB PIL images."""
        import torch

        if len(inputs) == 0:
            return np.empty((0, self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            if modality == TEXT:
                batch = self.processor.tokenizer(
                    list(inputs),
                    padding=self.padding,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                output = self.model.get_text_features(**_on(batch, self.device))
            elif modality == IMAGE:
                batch = self.processor.image_processor(images=list(inputs), return_tensors="pt")
                pixels = batch["pixel_values"].to(self.device, dtype=self.model.dtype)
                output = self.model.get_image_features(pixel_values=pixels)
            else:
                raise ValueError(f"an image-text model embeds texts and images, not {modality}")
        # transformers >= 5 returns the projected embeddings as pooler_output; 4.x a tensor
        features = getattr(output, "pooler_output", output)
        embeddings = features.float().cpu().numpy().astype(np.float32, copy=False)
        if self.normalize:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.maximum(norms, 1e-12)
        return np.ascontiguousarray(embeddings, dtype=np.float32)

    def save(self, directory: str | Path) -> None:
        """Weights (safetensors) and processor, loadable by :func:`load`."""
        self.model.save_pretrained(str(directory), safe_serialization=True)
        self.processor.save_pretrained(str(directory))


def _on(batch: Any, device: str) -> dict[str, Any]:
    return {key: value.to(device) for key, value in batch.items()}
