"""The media reference a task family embeds in place of a text."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

TEXT = "text"
IMAGE = "image"
AUDIO = "audio"
MODALITIES = (TEXT, IMAGE, AUDIO)

_HASH_BYTES = 16  # as the cache's text hashes: BLAKE2b-128


@dataclass(frozen=True)
class Media:
    """One image or audio clip: where its bytes are, which row it came from, and their hash.

    ``path`` is the resolved local file (None when the bytes came inline: a ``datasets`` Image or
    Audio feature, or base64 given to a served model); ``source`` is the value as the data gave it,
    for messages. ``digest`` hashes the content (never the path), so a file rewritten in place is a
    new item for the embedding cache, and a copy of the same file under another name is not.
    ``duration_s`` (audio) is read from the header when the item is made: select's efficiency is
    in seconds of audio per second.
    """

    modality: str
    source: str
    digest: bytes = field(repr=False)
    path: str | None = None
    data: bytes | None = field(default=None, repr=False, compare=False)
    row: int | None = field(default=None, compare=False)
    where: str = field(default="", compare=False)  # e.g. "digits/test": the table, for messages
    duration_s: float | None = field(default=None, compare=False)
    # The configured limit it was checked against (max pixels, or max seconds): decoding keeps it.
    limit: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.modality not in (IMAGE, AUDIO):
            raise ValueError(f"media modality must be {IMAGE!r} or {AUDIO!r}, got {self.modality!r}")
        if self.path is None and self.data is None:
            raise ValueError("a Media item needs a path or its bytes")

    @property
    def label(self) -> str:
        """``row 12 of digits/test ('images/3.png')``: how messages name the item."""
        row = f"row {self.row}" if self.row is not None else "an input"
        where = f" of {self.where}" if self.where else ""
        return f"{row}{where} ({self.source!r})"

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        with open(self.path, "rb") as handle:
            return handle.read()

    def opener(self) -> Any:
        """What Pillow and soundfile open: the path, or a file object over the inline bytes."""
        if self.path is not None:
            return self.path
        import io

        return io.BytesIO(self.data or b"")


def content_digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_HASH_BYTES).digest()


def file_digest(path: str) -> bytes:
    """BLAKE2b-128 of a file's bytes, read in 1 MiB blocks (a large file never sits in memory)."""
    digest = hashlib.blake2b(digest_size=_HASH_BYTES)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.digest()


def item_hash(item: str | Media) -> bytes:
    """The embedding cache's key of one input: its text, or its modality and content hash."""
    if isinstance(item, Media):
        return hashlib.blake2b(item.modality.encode() + b"\0" + item.digest, digest_size=_HASH_BYTES).digest()
    return hashlib.blake2b(item.encode("utf-8"), digest_size=_HASH_BYTES).digest()


def modality_of(items: Sequence[str | Media]) -> str:
    """The one modality of a list of inputs (texts, images or audio; a mixed list is an error)."""
    if len(items) == 0:
        return TEXT
    first = items[0]
    modality = first.modality if isinstance(first, Media) else TEXT
    for item in items:
        if (item.modality if isinstance(item, Media) else TEXT) != modality:
            raise TypeError(f"encode() takes inputs of one modality; got {modality} and others mixed")
    return modality


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive batches of ``size``: models decode media one batch at a time."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + max(1, size)]
