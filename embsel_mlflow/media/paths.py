"""Media column values -> :class:`Media` references, checked once when the data is loaded.

A value is a path relative to ``data.root`` (or absolute inside it), or a ``datasets`` Image /
Audio cell (``{"bytes": ..., "path": ...}``). Checking a file reads its header only (and its
bytes once, for the content hash); decoding waits for the model, one batch at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import MediaError
from embsel_mlflow.media.items import AUDIO, IMAGE, Media, content_digest, file_digest
from embsel_mlflow.media.media_io import BadMediaFile, audio_info

if TYPE_CHECKING:
    from embsel_mlflow.config import MediaConfig

ERROR = "error"
SKIP = "skip"
ON_BAD_MEDIA = (ERROR, SKIP)
_MB = 1024**2


@dataclass
class MediaColumn:
    """The checked items of one column: ``items[i]`` is row ``rows[i]``; ``bad`` the rows left out."""

    items: list[Media]
    rows: list[int]
    bad: list[str] = field(default_factory=list)  # one line per skipped row


def check_on_bad_media(value: str) -> str:
    from embsel_mlflow.errors import ConfigError

    if value not in ON_BAD_MEDIA:
        raise ConfigError(f"data.on_bad_media must be one of {', '.join(ON_BAD_MEDIA)}, got {value!r}")
    return value


def media_column(
    values: Sequence[Any],
    modality: str,
    *,
    root: str | Path,
    where: str,
    limits: MediaConfig,
    on_bad: str = ERROR,
    first_row: int = 0,
) -> MediaColumn:
    """Check every value of a media column; a bad one raises MediaError (``on_bad="error"``) or is left out.

    Row numbers in messages count data rows from ``first_row`` (0: the first data row).
    """
    check_on_bad_media(on_bad)
    root_dir = Path(root).expanduser().resolve()
    column = MediaColumn([], [])
    for offset, value in enumerate(values):
        row = first_row + offset
        try:
            item = make_media(value, modality, root=root_dir, row=row, where=where, limits=limits)
        except MediaError as err:
            if on_bad == ERROR:
                raise
            column.bad.append(str(err).split(": set data.on_bad_media")[0])
            continue
        column.items.append(item)
        column.rows.append(row)
    return column


def make_media(
    value: Any, modality: str, *, root: Path, row: int | None, where: str, limits: MediaConfig
) -> Media:
    """One checked :class:`Media` (header read, content hashed), or a one-line MediaError."""
    source = _source_name(value)
    label = Media(modality, source, b"", data=b"x", row=row, where=where).label

    def refuse(reason: str) -> MediaError:
        return MediaError(
            f"{label}: {reason}: fix or remove the file, or set data.on_bad_media=skip to leave such rows out"
        )

    data: bytes | None = None
    path: str | None = None
    if isinstance(value, dict) and value.get("bytes") is not None:  # a datasets Image/Audio cell
        data = bytes(value["bytes"])
        if len(data) > limits.max_file_mb * _MB:
            raise refuse(
                f"{len(data) / _MB:.0f} MB is over the limit of {limits.max_file_mb:g} MB (data.media.max_file_mb)"
            )
        digest = content_digest(data)
    else:
        if isinstance(value, dict):
            value = value.get("path")
        if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
            raise refuse(f"no {modality} path (empty cell)")
        try:
            resolved = resolve_inside(str(value).strip(), root)
        except ValueError as err:
            raise refuse(str(err)) from None
        if not resolved.exists():
            raise refuse(f"no such file: {resolved}")
        if not resolved.is_file():
            raise refuse(f"not a file: {resolved}")
        size = resolved.stat().st_size
        if size == 0:
            raise refuse("the file is empty (0 bytes)")
        if size > limits.max_file_mb * _MB:
            raise refuse(
                f"{size / _MB:.0f} MB is over the limit of {limits.max_file_mb:g} MB (data.media.max_file_mb)"
            )
        path = str(resolved)
        try:
            digest = file_digest(path)
        except OSError as err:
            raise refuse(f"unreadable ({err.strerror or err})") from None
    item = Media(modality, source, digest, path=path, data=data, row=row, where=where)
    try:
        duration = _check_header(item, limits)
    except BadMediaFile as err:
        raise refuse(str(err)) from None
    limit = limits.max_image_pixels if modality == IMAGE else limits.max_audio_seconds
    return Media(
        modality, source, digest, path=path, data=data, row=row, where=where, duration_s=duration, limit=limit
    )


def resolve_inside(value: str, root: Path) -> Path:
    """``value`` resolved against ``root`` (symlinks followed); ValueError if it ends up outside it."""
    if "://" in value:
        raise ValueError(f"{value!r} is a URL: download the files and give local paths relative to data.root")
    candidate = Path(value).expanduser()
    candidate = candidate if candidate.is_absolute() else root / candidate
    resolved = Path(os.path.realpath(candidate))
    if not resolved.is_relative_to(root):
        how = (
            "through a symlink"
            if Path(os.path.abspath(candidate)).is_relative_to(root)
            else "through '..' or an absolute path"
        )
        raise ValueError(
            f"{value!r} leads outside data.root ({root}) {how}; media files must be inside data.root"
        )
    return resolved


def _check_header(item: Media, limits: MediaConfig) -> float | None:
    """Refuse what is not an image/audio, or is over a limit, from its header; audio: its duration."""
    if item.modality == IMAGE:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(item.opener()) as image:
                width, height = image.size
                image.verify()  # chunk structure and checksums, without decoding pixels
        except UnidentifiedImageError:
            raise BadMediaFile(
                "not an image Pillow can read (wrong extension, or not an image at all)"
            ) from None
        except (OSError, SyntaxError, ValueError) as err:
            raise BadMediaFile(f"corrupt or truncated image ({err})") from None
        if width * height > limits.max_image_pixels:
            raise BadMediaFile(
                f"{width}x{height} pixels is over the limit of {limits.max_image_pixels:,} (data.media.max_image_pixels)"
            )
        return None
    assert item.modality == AUDIO
    frames, rate, _ = audio_info(item.opener())
    if frames <= 0 or rate <= 0:
        raise BadMediaFile("the clip is empty (0 samples)")
    duration = frames / rate
    if duration > limits.max_audio_seconds:
        raise BadMediaFile(
            f"{duration:.0f} s long, over the limit of {limits.max_audio_seconds:g} s (data.media.max_audio_seconds)"
        )
    return duration


def _source_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("path") or "<inline bytes>")
    return str(value)
