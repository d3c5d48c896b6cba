"""Media column values -> :class:`Media` references, checked once when the data is loaded.

A value is a path relative to ``data.root`` (or absolute inside it), or a ``datasets`` Image /
Audio cell (``{"bytes": ..., "path": ...}``). Checking a file reads its header and checks that
the data is whole (``media_io.check_image`` / ``check_audio``) and hashes its bytes; nothing
decoded is kept: the model decodes one batch at a time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import MediaError
from embsel_mlflow.media.items import AUDIO, IMAGE, Media, content_digest, file_digest
from embsel_mlflow.media.media_io import BadMediaFile, check_audio, check_image

if TYPE_CHECKING:
    from embsel_mlflow.config import MediaConfig

ERROR = "error"
SKIP = "skip"
ON_BAD_MEDIA = (ERROR, SKIP)
_MB = 1024**2


def check_on_bad_media(value: str) -> str:
    from embsel_mlflow.errors import ConfigError

    if value not in ON_BAD_MEDIA:
        raise ConfigError(f"data.on_bad_media must be one of {', '.join(ON_BAD_MEDIA)}, got {value!r}")
    return value


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
        if not data:
            raise refuse(f"the {modality} bytes are empty (0 bytes)")
        if len(data) > limits.max_file_mb * _MB:
            raise refuse(_too_big(len(data), limits))
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
            raise refuse(_too_big(size, limits))
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
    root = Path(os.path.realpath(root))  # a relative or symlinked root compares as the files do
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
    """Refuse what is not a whole image/audio file, or is over a limit; audio: its duration."""
    if item.modality == IMAGE:
        check_image(item.opener(), max_pixels=limits.max_image_pixels)
        return None
    assert item.modality == AUDIO
    return check_audio(item.opener(), max_seconds=limits.max_audio_seconds).duration_s


def _too_big(size: int, limits: MediaConfig) -> str:
    return f"{size / _MB:.0f} MB is over the limit of {limits.max_file_mb:g} MB (data.media.max_file_mb)"


def _source_name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("path") or "<inline bytes>")
    return str(value)
