"""Column type detection: what each column holds, with a confidence and the evidence."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class ColumnKind(StrEnum):
    text = "text"  # free text: what an embedding model embeds
    categorical = "categorical"  # few distinct values: a label or a category
    numeric = "numeric"
    boolean = "boolean"
    identifier = "identifier"
    image_path = "image_path"  # image file path or URL
    audio_path = "audio_path"  # audio file path or URL
    vectors = "vectors"  # precomputed embeddings
    structured = "structured"  # JSON objects or lists (e.g. BEIR metadata): not text
    empty = "empty"


IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus", ".wma"})
MEDIA_KINDS = {ColumnKind.image_path: IMAGE_EXTENSIONS, ColumnKind.audio_path: AUDIO_EXTENSIONS}
MEDIA_MODALITY = {ColumnKind.image_path: "image", ColumnKind.audio_path: "audio"}  # kind -> media modality
_BOOLEAN_VALUES = frozenset({"true", "false", "0", "1", "yes", "no", "t", "f", "y", "n"})
_ID_ROLES = frozenset({"id", "_id", "query_id", "doc_id", "corpus-id", "query-id"})
_LABEL_ROLES = frozenset({"label", "labels", "category", "class", "fine"})
_NUMBER_LIST = re.compile(r"^\s*\[\s*-?[\d.eE+-]+(\s*,\s*-?[\d.eE+-]+){7,}\s*\]\s*$")
# Share of (non-empty) values that must agree for a kind to be chosen.
_MAJORITY = 0.9
_SAMPLE = 2000  # values inspected for file existence and vector parsing: bounded cost on big tables
_MIN_ID_ROWS = 20  # fewer rows than this: unique values say little about ids


@dataclass
class ColumnType:
    kind: ColumnKind
    confidence: float  # share of the non-empty values that fit the kind (1.0 for empty)
    evidence: str
    value_types: dict[str, int] = field(default_factory=dict)  # Python type -> count (mixed types)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "confidence": round(self.confidence, 4),
            "evidence": self.evidence,
            "value_types": self.value_types,
        }


def value_types(series: pd.Series) -> dict[str, int]:
    """Python types of the non-null values ("str": 98, "int": 2): more than one is a mixed column."""
    counts = series.dropna().map(lambda v: type(v).__name__).value_counts()
    return {str(name): int(count) for name, count in counts.items()}


def as_strings(series: pd.Series) -> pd.Series:
    """Values as str, missing cells as "" (the data layer's convention for texts)."""
    return series.map(lambda v: "" if _missing(v) else (v if isinstance(v, str) else str(v)))


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN / NA
    except (TypeError, ValueError):  # arrays and lists compare elementwise
        return False


def detect_column(name: str, series: pd.Series, *, root: str | Path = ".") -> ColumnType:
    """Classify ``series`` (column ``name``); local media files are looked up relative to ``root``."""
    import pandas as pd

    types = value_types(series)
    if _is_vector_column(series):
        return ColumnType(ColumnKind.vectors, 1.0, "every value is a list of numbers of one length", types)
    cells = _media_cells(series)
    if cells is not None:
        return ColumnType(*cells, value_types=types)
    structured = sum(count for name, count in types.items() if name in ("dict", "list", "ndarray"))
    if structured and structured >= _MAJORITY * sum(types.values()):
        return ColumnType(
            ColumnKind.structured, structured / sum(types.values()), f"{structured} JSON objects/lists", types
        )
    strings = as_strings(series).str.strip()
    filled = strings[strings != ""]
    total = len(series)
    if filled.empty:
        return ColumnType(ColumnKind.empty, 1.0, f"all {total} values are missing or blank", types)
    n = len(filled)
    media = _media_column(filled, root)
    if media is not None:
        return ColumnType(*media, value_types=types)
    lowered = filled.str.lower()
    distinct = int(filled.nunique())
    if distinct <= 2 and lowered.isin(_BOOLEAN_VALUES).all():
        return ColumnType(ColumnKind.boolean, 1.0, f"only {sorted(set(lowered))} ({n} values)", types)
    key = name.lower()
    if key in _LABEL_ROLES:
        return ColumnType(ColumnKind.categorical, 1.0, f"a label column: {distinct} distinct values", types)
    if key in _ID_ROLES or key.endswith("_id"):
        return ColumnType(
            ColumnKind.identifier, distinct / n, f"id column: {distinct} distinct values in {n} rows", types
        )
    numbers = pd.to_numeric(filled, errors="coerce")
    unique_tokens = distinct == n and n >= _MIN_ID_ROWS
    if numbers.notna().mean() >= _MAJORITY:
        if unique_tokens and (numbers.dropna() % 1 == 0).all():
            return ColumnType(ColumnKind.identifier, 1.0, f"{n} distinct integers in {n} rows", types)
        share = float(numbers.notna().mean())
        return ColumnType(
            ColumnKind.numeric, share, f"{int(numbers.notna().sum())}/{n} parse as numbers", types
        )
    if unique_tokens and not filled.str.contains(r"\s").any():
        return ColumnType(
            ColumnKind.identifier, 1.0, f"{n} distinct values without spaces in {n} rows", types
        )
    words = filled.str.count(r"\S+")
    if distinct <= max(20, n // 20) and words.mean() < 4:
        return ColumnType(
            ColumnKind.categorical, 1 - distinct / n, f"{distinct} distinct values in {n} rows", types
        )
    share = float((words >= 2).mean())
    return ColumnType(
        ColumnKind.text,
        max(share, 0.5),
        f"mean {words.mean():.1f} words; {distinct} distinct values in {n} rows",
        types,
    )


def _media_column(filled: pd.Series, root: str | Path) -> tuple[ColumnKind, float, str] | None:
    """(kind, confidence, evidence) when most values are image or audio paths/URLs."""
    suffixes = (
        filled.str.lower().str.replace(r"[?#].*$", "", regex=True).str.extract(r"(\.[a-z0-9]{2,5})$")[0]
    )
    for kind, extensions in MEDIA_KINDS.items():
        hits = suffixes.isin(extensions)
        share = float(hits.mean())
        if share < _MAJORITY:
            continue
        values = filled[hits]
        urls = int(values.str.match(r"^[a-z][a-z0-9+.-]*://").sum())
        sample = values.head(_SAMPLE)
        exists = sum(_local_file(value, root).is_file() for value in sample if "://" not in value)
        shown = ", ".join(sorted(set(suffixes[hits]))[:5])
        evidence = (
            f"{int(hits.sum())}/{len(filled)} values end in {shown}; {urls} URL(s); "
            f"{exists}/{len(sample) - min(urls, len(sample))} local path(s) checked exist"
        )
        return kind, share, evidence
    return None


# The first bytes of the formats Pillow and libsndfile read (RIFF is resolved by its form type).
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_AUDIO_MAGIC = (b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"FORM")


def media_cell_kind(value: Any) -> ColumnKind | None:
    """image_path / audio_path for a ``datasets`` Image or Audio cell (``{"bytes", "path"}``), else None.

    The bytes' signature decides (a path may be a name only); without bytes, the path's extension.
    """
    if not isinstance(value, dict) or not value or not set(value) <= {"bytes", "path", "sampling_rate"}:
        return None
    data = value.get("bytes")
    if isinstance(data, bytes | bytearray) and data:
        head = bytes(data[:12])
        if head.startswith(b"RIFF"):
            return {b"WEBP": ColumnKind.image_path, b"WAVE": ColumnKind.audio_path}.get(head[8:12])
        if head.startswith(_IMAGE_MAGIC):
            return ColumnKind.image_path
        if head.startswith(_AUDIO_MAGIC):
            return ColumnKind.audio_path
    suffix = Path(str(value.get("path") or "")).suffix.lower()
    return next((kind for kind, extensions in MEDIA_KINDS.items() if suffix in extensions), None)


def _media_cells(series: pd.Series) -> tuple[ColumnKind, float, str] | None:
    """(kind, confidence, evidence) when most values are ``datasets`` Image/Audio cells of one kind."""
    sample = [value for value in series.head(_SAMPLE).tolist() if isinstance(value, dict)]
    if not sample or len(sample) < _MAJORITY * series.head(_SAMPLE).notna().sum():
        return None
    kinds = [media_cell_kind(value) for value in sample]
    for kind in MEDIA_KINDS:
        share = kinds.count(kind) / len(sample)
        if share >= _MAJORITY:
            inline = sum(bool(value.get("bytes")) for value in sample)
            what = kind.value.removesuffix("_path")
            evidence = f"{kinds.count(kind)}/{len(sample)} datasets {what} cells; {inline} with inline bytes"
            return kind, share, evidence
    return None


def _local_file(value: str, root: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(root) / path


def _is_vector_column(series: pd.Series) -> bool:
    """Lists/arrays of numbers, or their JSON text ("[0.1, 0.2, ...]", 8+ numbers), all of one length."""
    sample = series.dropna().head(_SAMPLE).tolist()
    if not sample:
        return False
    lengths = set()
    for value in sample:
        if isinstance(value, str):
            if not _NUMBER_LIST.match(value):
                return False
            value = json.loads(value)
        if not hasattr(value, "__len__") or isinstance(value, dict | bytes):
            return False
        try:
            [float(x) for x in value]
        except (TypeError, ValueError):
            return False
        lengths.add(len(value))
    return len(lengths) == 1 and lengths.pop() > 1
