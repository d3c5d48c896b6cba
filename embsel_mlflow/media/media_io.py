"""Decoding images and audio: one function each, used by evaluation and by the served model.

Self-contained on purpose (Pillow, numpy, soundfile, soxr; no embsel_mlflow import): the
pyfunc of a registered image or audio model ships this file beside itself (``code_paths``), so
a served model decodes exactly as evaluation did.

Each function takes what Pillow and soundfile open (a path or a binary file object) and raises
:class:`BadMediaFile` with a short reason for anything it cannot use; callers add the row and
file to the message.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

# Defaults of the configured limits (data.media.*): a larger input is refused, not decoded.
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels, decoded as RGB: 120 MB
MAX_AUDIO_SECONDS = 600.0  # ten minutes


class BadMediaFile(ValueError):
    """A file that is missing, not what its extension says, corrupt, empty or over a limit."""


def open_image(source: Any, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """The image at ``source``, fully decoded, as an RGB ``PIL.Image``.

    The size is checked from the header before any pixel is decoded, so a 100-megapixel file
    costs nothing; a truncated file fails here (Pillow decodes every pixel), not later.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise BadMediaFile(
                    f"{width}x{height} pixels is over the limit of {max_pixels:,} (data.media.max_image_pixels)"
                )
            if width == 0 or height == 0:
                raise BadMediaFile("the image is empty (0 pixels)")
            image.load()
    except BadMediaFile:
        raise
    except FileNotFoundError as err:
        raise BadMediaFile("no such file") from err
    except IsADirectoryError as err:
        raise BadMediaFile("a directory, not an image file") from err
    except PermissionError as err:
        raise BadMediaFile("permission denied") from err
    except UnidentifiedImageError as err:
        raise BadMediaFile("not an image Pillow can read (wrong extension, or not an image at all)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadMediaFile(f"too many pixels ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's words for truncated and corrupt data
        raise BadMediaFile(
            f"corrupt or truncated image ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from err
    return image if image.mode == "RGB" else image.convert("RGB")


def audio_info(source: Any) -> tuple[int, int, int]:
    """(frames, sample rate, channels) from the header, without decoding."""
    import soundfile

    try:
        info = soundfile.info(source)
    except FileNotFoundError as err:
        raise BadMediaFile("no such file") from err
    except soundfile.LibsndfileError as err:
        raise BadMediaFile(f"not an audio file libsndfile can read ({err.error_string})") from err
    except (RuntimeError, OSError) as err:
        raise BadMediaFile(f"unreadable audio ({err})") from err
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    return int(info.frames), int(info.samplerate), int(info.channels)


def read_audio(source: Any, *, sample_rate: int, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """The clip at ``source`` as mono float32 in [-1, 1] at ``sample_rate`` Hz.

    Channels are averaged; the rate is converted with soxr (high quality). A clip longer than
    ``max_seconds`` is refused from its header, before anything is decoded.
    """
    import soundfile
    import soxr

    frames, rate, _ = audio_info(source)
    if frames <= 0 or rate <= 0:
        raise BadMediaFile("the clip is empty (0 samples)")
    if frames / rate > max_seconds:
        raise BadMediaFile(
            f"{frames / rate:.0f} s long, over the limit of {max_seconds:g} s (data.media.max_audio_seconds)"
        )
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as err:
        raise BadMediaFile(f"corrupt or truncated audio ({err})") from err
    if samples.shape[0] == 0:
        raise BadMediaFile("the clip is empty (0 samples)")
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(mono, dtype=np.float32)


def decode_input(value: Any) -> Any:
    """A served model's input: a local path as it is, base64 text or raw bytes as a file object."""
    import base64
    import binascii
    import io
    import os

    if isinstance(value, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(value))
    text = str(value)
    if os.path.exists(text):
        return text
    try:
        return io.BytesIO(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as err:
        raise BadMediaFile(f"neither an existing file nor base64 bytes: {text[:60]!r}") from err
