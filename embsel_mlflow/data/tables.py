"""The tables of a dataset config, loaded with their provenance, and the checks of every value used.

The task families (``embsel_mlflow.families``) build their examples with these.
Rows in error messages are counted from 1, header excluded. Column names in messages are the
file's own (before renaming to roles), so they can be searched for in the file. Under
``data.limit`` only the kept evaluation rows are validated (quick runs stay quick).
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Container, Iterator, Mapping, Sequence, ValuesView
from typing import TYPE_CHECKING

from embsel_mlflow.data.loader import FILES_ATTR, load_table
from embsel_mlflow.data.task_data import DataWarning, TableInfo
from embsel_mlflow.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from embsel_mlflow.config import DataConfig, TableConfig
    from embsel_mlflow.media.items import Media

# The roles a split row is scored by: a row without one is left out or refused (data.on_missing).
LABEL_ROLES = ("label", "score")
_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}
# A visible character: anything but whitespace, control and invisible format characters
# (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi marks, Mongolian vowel separator).
VISIBLE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")


@dataclasses.dataclass
class Loaded:
    """A loaded table with what error messages need to point back at it."""

    frame: pd.DataFrame
    source: str
    columns: dict[str, str]  # role -> column name in the file
    rows: list[int] | None = None  # the frame's rows as read, once rows were left out (on_missing)

    def column(self, role: str) -> str:
        return self.columns.get(role, role)

    def at(self, row: int) -> tuple[str, int]:
        """(file, 1-based row in that file) of the frame's 0-based ``row`` (tables may span files)."""
        if self.rows is not None:
            row = self.rows[row]
        files = self.frame.attrs.get(FILES_ATTR) or [(0, self.source)]
        start, path = max((entry for entry in files if entry[0] <= row), key=lambda entry: entry[0])
        return path, row - start + 1


class Tables:
    """Loads the tables of one DataConfig and records their provenance."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.loaded: list[TableInfo] = []
        self.warnings: list[DataWarning] = []

    def split(self, name: str, required: Sequence[str], *, record_as: str | None = None) -> Loaded:
        table = self.cfg.splits.get(name)
        if table is None:
            raise ConfigError(
                f"data.splits.{name}: split {name!r} is not configured for dataset {self.cfg.name!r}; "
                f"configured splits: {sorted(self.cfg.splits)}"
            )
        if table.hub and not table.split:
            table = dataclasses.replace(table, split=name)  # a hub split defaults to the split's name
        loaded = self.read(table, f"data.splits.{name}", required, record_as or name)
        return self._without_missing(loaded, [role for role in LABEL_ROLES if role in loaded.frame.columns])

    def side(self, name: str, required: Sequence[str]) -> Loaded:
        """The corpus or queries table of a retrieval dataset."""
        table = getattr(self.cfg, name)
        if table is None:
            raise ConfigError(f"data.{name}: retrieval needs a {name} table; set data.{name}.path")
        return self.read(table, f"data.{name}", required, name)

    def read(self, table: TableConfig, where: str, required: Sequence[str], role: str) -> Loaded:
        numbered = table.row_ids is not None
        if numbered and "id" in table.columns:
            raise ConfigError(f"{where}: give row_ids or columns.id, not both")
        frame, source = load_table(
            table,
            root=self.cfg.root,
            defaults=self.cfg.reader,
            required=[r for r in required if not (numbered and r == "id")],
            where=where,
        )
        if numbered:  # the passages are known by their row: ids "0", "1", ... (or from 1)
            if table.row_ids not in (0, 1):
                raise ConfigError(f"{where}.row_ids: count rows from 0 or 1, got {table.row_ids}")
            frame = frame.assign(id=[str(i + int(table.row_ids)) for i in range(len(frame))])
        self.loaded.append(TableInfo(role=role, source=source, frame=frame))
        return Loaded(frame=frame, source=source, columns=dict(table.columns))

    def _without_missing(self, loaded: Loaded, roles: Sequence[str]) -> Loaded:
        """``loaded`` without the rows whose label or score is missing (``data.on_missing=skip``,
        counted in a ``missing_labels_skipped`` warning), or one DataError naming the first."""
        import numpy as np

        if not roles:
            return loaded
        frame = loaded.frame
        missing = np.zeros(len(frame), dtype=bool)
        for role in roles:
            missing |= np.array([VISIBLE.search(v) is None for v in _strings(frame[role])], dtype=bool)
        if not missing.any():
            return loaded
        count, first = int(missing.sum()), int(np.flatnonzero(missing)[0])
        path, row = loaded.at(first)
        names = " or ".join(repr(loaded.column(role)) for role in roles)
        if self.cfg.on_missing != "skip":
            raise DataError(
                f"{path}: {count} row(s) have no {names} value, first at row {row}; fill or remove "
                "them, or set data.on_missing=skip to leave them out (counted and logged)"
            )
        kept = np.flatnonzero(~missing)
        self.warn(
            "missing_labels_skipped",
            f"{loaded.source}: {count} of {len(frame)} row(s) with no {names} value left out "
            f"(data.on_missing=skip); first at row {row}",
            count,
        )
        trimmed = frame.iloc[kept].reset_index(drop=True)
        trimmed.attrs = frame.attrs  # the row -> file map, through ``rows``
        self.loaded[-1].frame = trimmed
        rows = [loaded.rows[i] for i in kept] if loaded.rows is not None else kept.tolist()
        return dataclasses.replace(loaded, frame=trimmed, rows=rows)

    def limit_last(self, frame: pd.DataFrame) -> None:
        """Record the evaluated rows only for the last table (the eval split under ``data.limit``)."""
        self.loaded[-1].frame = frame

    def warn(self, code: str, message: str, count: int) -> None:
        self.warnings.append(DataWarning(code=code, message=message, count=count))


def head(tables: Tables, loaded: Loaded, limit: int | None) -> pd.DataFrame:
    frame = loaded.frame if limit is None else loaded.frame.head(limit)
    frame.attrs = loaded.frame.attrs  # keep the row -> file map for error messages
    tables.limit_last(frame)
    return frame


# --- value validation -------------------------------------------------------------------------


def texts(frame: pd.DataFrame, role: str, loaded: Loaded, *, what: str = "text") -> list[str]:
    """The role's values as strings with a visible character; anything else is a DataError.

    Empty, missing, blank and invisible-only values (zero-width spaces, a BOM) are refused: a
    model would embed them as noise.
    """
    values = _strings(frame[role])
    bad = [i for i, v in enumerate(values) if VISIBLE.search(v) is None]
    if bad:
        path, row = loaded.at(bad[0])
        raise DataError(
            f"{path}: column {loaded.column(role)!r} has {len(bad)} empty or missing {what} value(s), "
            f"first at row {row} (blank or only invisible characters count as empty); fill or remove "
            "those rows"
        )
    return values


def numbers(frame: pd.DataFrame, role: str, loaded: Loaded) -> np.ndarray:
    """The role's values as float64; a value that is not a number is a DataError."""
    import numpy as np
    import pandas as pd

    raw = frame[role]
    parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(parsed))
    if bad.size:
        row = int(bad[0])
        path, file_row = loaded.at(row)
        raise DataError(
            f"{path}: column {loaded.column(role)!r} row {file_row} has {raw.iloc[row]!r}, "
            f"not a number ({bad.size} such row(s)); fix the value or map {role} to the right column"
        )
    return parsed


def integers(frame: pd.DataFrame, role: str, loaded: Loaded) -> np.ndarray:
    """The role's values as int64; a non-integer value is a DataError."""
    import numpy as np

    values = numbers(frame, role, loaded)
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        row = int(bad[0])
        path, file_row = loaded.at(row)
        raise DataError(
            f"{path}: column {loaded.column(role)!r} row {file_row} has {frame[role].iloc[row]!r}, "
            f"not an integer ({bad.size} such row(s))"
        )
    return values.astype(np.int64)


def binary_labels(frame: pd.DataFrame, role: str, loaded: Loaded) -> np.ndarray:
    """0/1 labels from ints, booleans or their text forms ("1", "true"); anything else is a DataError."""
    import numpy as np

    labels = np.empty(len(frame), dtype=np.int64)
    for row, (value, text) in enumerate(zip(frame[role].tolist(), _strings(frame[role]), strict=True)):
        text = text.strip().lower()
        if text in _TRUE:
            labels[row] = 1
        elif text in _FALSE:
            labels[row] = 0
        else:
            path, file_row = loaded.at(row)
            raise DataError(
                f"{path}: column {loaded.column(role)!r} row {file_row} has {value!r}; "
                f"pair labels must be 0/1 or true/false (1 = positive pair)"
            )
    return labels


def unique_ids(loaded: Loaded) -> list[str]:
    """The table's ``id`` values as strings; missing or duplicate ids are a DataError."""
    ids = texts(loaded.frame, "id", loaded, what="id")
    if len(set(ids)) == len(ids):  # the common case, without a count per id
        return ids
    duplicates = [i for i, count in Counter(ids).items() if count > 1]
    if duplicates:
        raise DataError(
            f"{loaded.source}: column {loaded.column('id')!r} has {len(duplicates)} duplicate id(s), "
            f"e.g. {duplicates[0]!r}; ids must be unique"
        )
    return ids


def documents(corpus: Loaded) -> list[str]:
    """Corpus texts, "title text" when a title is present (the MTEB/BEIR convention)."""
    return [text for batch in _document_batches(corpus) for text in batch]


def corpus_texts(corpus: Loaded, ids: list[str]) -> CorpusTexts:
    """id -> document (as :func:`documents`), made from the loaded table a slice at a time.

    A million abstracts as Python strings take several times their UTF-8 bytes and would stay
    for the whole run, next to the (Arrow-backed) table they came from; this mapping keeps only
    the table and checks every document once, a batch at a time.
    """
    for _ in _document_batches(corpus):
        pass  # refuses an empty document now, with the table's row
    return CorpusTexts(ids, corpus.frame)


_DOCUMENT_BATCH = 50_000


def _document_batches(corpus: Loaded) -> Iterator[list[str]]:
    """:func:`documents`, ``_DOCUMENT_BATCH`` rows at a time; an empty document is a DataError."""
    first_bad: int | None = None
    bad_count = 0
    for start in range(0, len(corpus.frame), _DOCUMENT_BATCH):
        batch = _document_batch(corpus.frame.iloc[start : start + _DOCUMENT_BATCH])
        bad = [i for i, document in enumerate(batch) if VISIBLE.search(document) is None]
        if bad and first_bad is None:
            first_bad = start + bad[0]
        bad_count += len(bad)
        if first_bad is None:
            yield batch
    if first_bad is None:
        return
    path, row = corpus.at(first_bad)
    if "title" not in corpus.frame.columns:
        raise DataError(
            f"{path}: column {corpus.column('text')!r} has {bad_count} empty or missing text value(s), "
            f"first at row {row} (blank or only invisible characters count as empty); fill or remove "
            "those rows"
        )
    raise DataError(
        f"{path}: columns {corpus.column('title')!r} and {corpus.column('text')!r} are both "
        f"empty in {bad_count} document(s), first at row {row}; fill or remove those rows"
    )


def _document_batch(part: pd.DataFrame) -> list[str]:
    if "title" not in part.columns:
        return _strings(part["text"])
    titles, bodies = _strings(part["title"]), _strings(part["text"])
    return [(f"{title} {body}").strip() for title, body in zip(titles, bodies, strict=True)]


class CorpusTexts(Mapping[str, str]):
    """A read-only id -> document mapping over the corpus table, in table order.

    Iterating the values (or :meth:`texts` of a range) converts a slice of the table at a time,
    so a search that walks the corpus in chunks holds one chunk's strings at once.
    """

    def __init__(self, ids: list[str], frame: pd.DataFrame) -> None:
        if len(ids) != len(frame):
            raise ValueError(f"{len(ids)} ids for {len(frame)} rows")
        self._ids = ids
        self._row_of: dict[str, int] | None = None  # built on the first lookup by id
        self._frame = frame

    @property
    def _rows(self) -> dict[str, int]:
        if self._row_of is None:
            self._row_of = {doc_id: row for row, doc_id in enumerate(self._ids)}
        return self._row_of

    def __getitem__(self, doc_id: str) -> str:
        row = self._rows[doc_id]
        return self.texts(row, row + 1)[0]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def texts(self, start: int, stop: int) -> list[str]:
        """The documents of rows ``start`` to ``stop`` (table order)."""
        return _document_batch(self._frame.iloc[start:stop])

    def values(self) -> _CorpusValues:
        return _CorpusValues(self)


class _CorpusValues(ValuesView[str]):
    _mapping: CorpusTexts

    def __iter__(self) -> Iterator[str]:
        corpus = self._mapping
        for start in range(0, len(corpus), _DOCUMENT_BATCH):
            yield from corpus.texts(start, start + _DOCUMENT_BATCH)


def check_known(
    ids: list[str], known: Container[str], qrels: Loaded, role: str, kind: str, table: Loaded
) -> None:
    unknown = list(dict.fromkeys(i for i in ids if i not in known))
    if unknown:
        raise DataError(
            f"{qrels.source}: column {qrels.column(role)!r} has {len(unknown)} id(s) not found in the "
            f"{kind} table {table.source}, e.g. {unknown[0]!r}; check the qrels split and the id columns"
        )


def _strings(column: pd.Series) -> list[str]:
    """Values as ``str``, missing cells (None, NaN, NA) as "" (ints from json/parquet become "4983")."""
    missing = column.isna().tolist()
    return ["" if gone else str(value) for value, gone in zip(column.tolist(), missing, strict=True)]


def media(
    tables: Tables, frame: pd.DataFrame, role: str, loaded: Loaded, modality: str
) -> tuple[pd.DataFrame, list[Media]]:
    """(rows kept, their checked image/audio references) of the role's column of paths.

    Paths are relative to ``data.root`` and must stay inside it; a ``datasets`` Image/Audio cell
    (``{"bytes": ..., "path": ...}``) is taken as its inline bytes. A missing, corrupt, empty or
    over-limit file is one MediaError naming the row and file, or (``data.on_bad_media=skip``)
    its row is left out of the returned frame, counted and logged as a ``bad_media_skipped``
    warning that quotes the first reason. Headers are read and the bytes hashed; nothing decoded
    is kept here. Validate the other columns (labels, texts) of ``frame`` first: their messages
    count rows by position in the frame they are given, and skipping shifts positions.
    """
    from pathlib import Path

    from embsel_mlflow.errors import MediaError
    from embsel_mlflow.media.paths import ERROR, check_on_bad_media, make_media

    cfg = tables.cfg
    on_bad = check_on_bad_media(cfg.on_bad_media)
    root = Path(cfg.root).expanduser().resolve()
    items: list[Media] = []
    kept: list[int] = []
    skipped: list[str] = []  # the error line of each left-out row
    for position, value in enumerate(frame[role].tolist()):
        path, row = loaded.at(position)
        try:
            item = make_media(value, modality, root=root, row=row, where=path, limits=cfg.media)
        except MediaError as err:
            if on_bad == ERROR:
                raise
            skipped.append(str(err).split(": fix or remove the file")[0])
            continue
        items.append(item)
        kept.append(position)
    if skipped:
        tables.warn(
            "bad_media_skipped",
            f"{loaded.source}: {len(skipped)} of {len(frame)} row(s) with a missing, corrupt, empty or "
            f"over-limit {modality} file left out (data.on_bad_media=skip); first: {skipped[0]}",
            len(skipped),
        )
        frame = frame.iloc[kept]
    return frame, items
