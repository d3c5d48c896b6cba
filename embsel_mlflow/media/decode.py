"""Decoding a batch of checked :class:`Media` for a model, with one-line errors naming the item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embsel_mlflow.errors import MediaError
from embsel_mlflow.media import media_io
from embsel_mlflow.media.items import AUDIO, IMAGE, Media


def load_images(items: Sequence[Media]) -> list[Any]:
    """RGB ``PIL.Image`` objects of a batch of image items (decode one batch at a time)."""
    images = []
    for item in items:
        _expect(item, IMAGE)
        limit = int(item.limit) if item.limit else media_io.MAX_IMAGE_PIXELS
        try:
            images.append(media_io.open_image(item.opener(), max_pixels=limit))
        except media_io.BadMediaFile as err:
            raise _error(item, err) from None
    return images


def load_audio(items: Sequence[Media], *, sample_rate: int) -> list[np.ndarray]:
    """Mono float32 waveforms at ``sample_rate`` Hz of a batch of audio items."""
    clips = []
    for item in items:
        _expect(item, AUDIO)
        limit = float(item.limit) if item.limit else media_io.MAX_AUDIO_SECONDS
        try:
            clips.append(media_io.read_audio(item.opener(), sample_rate=sample_rate, max_seconds=limit))
        except media_io.BadMediaFile as err:
            raise _error(item, err) from None
    return clips


def _expect(item: Any, modality: str) -> None:
    if not isinstance(item, Media) or item.modality != modality:
        what = item.modality if isinstance(item, Media) else "text"
        raise MediaError(f"expected {modality} inputs, got {what}: this model embeds {modality} only here")


def _error(item: Media, err: Exception) -> MediaError:
    return MediaError(f"{item.label}: {err}: fix or remove the file, or set data.on_bad_media=skip")
