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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

# Defaults of the configured limits (data.media.*): a larger input is refused, not decoded.
MAX_IMAGE_PIXELS = 40_000_000  # 40 megapixels, decoded as RGB: 120 MB
MAX_AUDIO_SECONDS = 600.0  # ten minutes
_AUDIO_BLOCK = 1 << 20  # frames read at a time: a stereo file is mixed down block by block


class BadMediaFile(ValueError):
    """A file that is missing, not what its extension says, corrupt, empty or over a limit."""


class OverLimit(BadMediaFile):
    """An image or clip larger than the configured limit (refused from its header)."""


class EmptyMedia(BadMediaFile):
    """An image of 0 pixels or a clip of 0 samples."""


class ImageHeader(NamedTuple):
    width: int
    height: int
    format: str  # Pillow's name: PNG, JPEG, GIF, ...
    mode: str  # L, RGB, RGBA, P, I;16, ...


class AudioInfo(NamedTuple):
    frames: int
    sample_rate: int
    channels: int


class AudioHeader(NamedTuple):
    frames: int
    sample_rate: int
    channels: int
    format: str  # libsndfile's container name: WAV, FLAC, OGG, MP3, ...
    subtype: str  # PCM_16, FLOAT, VORBIS, ...

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0


def image_header(source: Any, *, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """Size, format and mode from the header; nothing decoded. Over ``max_pixels`` or empty: refused."""
    with _opened_image(source, max_pixels) as image:
        return ImageHeader(image.size[0], image.size[1], str(image.format or "?"), str(image.mode))


def check_image(source: Any, *, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """:func:`image_header`, plus a check that the data is whole, at a fraction of a decode's cost.

    PNG: every chunk's checksum and the end chunk (``verify``). JPEG: a decode at 1/8 scale
    (the DCT scales down, all data is still read). Other formats: a full decode (bounded by
    ``max_pixels``). A truncated or corrupt file is refused here, when the data is loaded.
    """
    with _opened_image(source, max_pixels) as image:
        header = ImageHeader(image.size[0], image.size[1], str(image.format or "?"), str(image.mode))
        try:
            if header.format == "PNG":
                image.verify()
            else:
                if header.format == "JPEG":
                    image.draft("RGB", (max(1, header.width // 8), max(1, header.height // 8)))
                image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise BadMediaFile(f"corrupt or truncated image ({_reason(err)})") from None
    return header


def open_image(source: Any, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """The image at ``source``, fully decoded, as an RGB ``PIL.Image``.

    The size is checked from the header before any pixel is decoded, so a 100-megapixel file
    costs nothing; a truncated file fails here (Pillow decodes every pixel), not later.
    """
    with _opened_image(source, max_pixels) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise BadMediaFile(f"corrupt or truncated image ({_reason(err)})") from None
        # convert() makes a new image; the opened one (and its file handle) is closed on exit
        return image.convert("RGB") if image.mode != "RGB" else image.copy()


@contextmanager
def _opened_image(source: Any, max_pixels: int) -> Iterator[Any]:
    """The opened (not decoded) image, its size checked against ``max_pixels``; closed on exit."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Our own limit is checked below from the same header; Pillow's bomb *warning* (over
            # 89 MP) would only repeat it, its *error* (over 179 MP) is reported as over the limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except FileNotFoundError:
        raise BadMediaFile("no such file") from None
    except IsADirectoryError:
        raise BadMediaFile("a directory, not an image file") from None
    except PermissionError:
        raise BadMediaFile("permission denied") from None
    except UnidentifiedImageError:
        raise BadMediaFile("not an image Pillow can read (wrong extension, or not an image at all)") from None
    except Image.DecompressionBombError:
        raise OverLimit(
            f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, over the limit of {max_pixels:,} "
            "(data.media.max_image_pixels)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # Pillow's words for a broken header
        raise BadMediaFile(f"corrupt or truncated image ({_reason(err)})") from None
    try:
        width, height = image.size
        if width * height > max_pixels:
            limit = f"the limit of {max_pixels:,} (data.media.max_image_pixels)"
            raise OverLimit(f"{width}x{height} pixels is over {limit}")
        if width == 0 or height == 0:
            raise EmptyMedia("the image is empty (0 pixels)")
        yield image
    finally:
        image.close()


def audio_header(source: Any) -> AudioHeader:
    """Frames, rate, channels, container and sample format from the header, without decoding."""
    import soundfile

    try:
        info = soundfile.info(source)
    except FileNotFoundError:
        raise BadMediaFile("no such file") from None
    except IsADirectoryError:
        raise BadMediaFile("a directory, not an audio file") from None
    except PermissionError:
        raise BadMediaFile("permission denied") from None
    except soundfile.LibsndfileError as err:
        raise BadMediaFile(
            f"not an audio file libsndfile can read ({err.error_string}: wrong extension, or not audio)"
        ) from None
    except (RuntimeError, OSError, EOFError) as err:
        raise BadMediaFile(f"unreadable audio ({_reason(err)})") from None
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    return AudioHeader(
        int(info.frames), int(info.samplerate), int(info.channels), str(info.format), str(info.subtype)
    )


def audio_info(source: Any) -> AudioInfo:
    """(frames, sample rate, channels) from the header, without decoding."""
    header = audio_header(source)
    return AudioInfo(header.frames, header.sample_rate, header.channels)


def check_audio(source: Any, *, max_seconds: float = MAX_AUDIO_SECONDS) -> AudioHeader:
    """The header of a usable clip: not empty and not longer than ``max_seconds`` (nothing decoded)."""
    header = audio_header(source)
    if header.frames <= 0 or header.sample_rate <= 0:
        raise EmptyMedia("the clip is empty (0 samples)")
    if header.duration_s > max_seconds:
        raise OverLimit(
            f"{header.duration_s:.0f} s long, over the limit of {max_seconds:g} s "
            "(data.media.max_audio_seconds)"
        )
    return header


def read_audio(source: Any, *, sample_rate: int, max_seconds: float = MAX_AUDIO_SECONDS) -> np.ndarray:
    """The clip at ``source`` as mono float32 in [-1, 1] at ``sample_rate`` Hz.

    Channels are averaged block by block (a long stereo file never sits in memory twice); the
    rate is converted with soxr (high quality). A clip longer than ``max_seconds`` is refused
    from its header, before anything is decoded.
    """
    import soundfile
    import soxr

    header = check_audio(source, max_seconds=max_seconds)
    mono = np.empty(header.frames, dtype=np.float32)
    filled = 0
    try:
        with soundfile.SoundFile(source) as sound:
            for block in sound.blocks(blocksize=_AUDIO_BLOCK, dtype="float32", always_2d=True):
                end = min(filled + len(block), header.frames)  # a header may undercount: keep its length
                mono[filled:end] = block[: end - filled].mean(axis=1, dtype=np.float32)
                filled = end
    except (soundfile.LibsndfileError, RuntimeError, OSError, EOFError) as err:
        raise BadMediaFile(f"corrupt or truncated audio ({_reason(err)})") from None
    if filled == 0:
        raise EmptyMedia("the clip is empty (0 samples decoded)")
    mono = mono[:filled]
    if header.sample_rate != sample_rate:
        mono = soxr.resample(mono, header.sample_rate, sample_rate, quality="HQ")
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


def _reason(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
