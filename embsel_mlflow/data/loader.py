"""Read one table (a local file or a hub dataset split) into a DataFrame with task-role columns.

Everything goes through Hugging Face ``datasets``: local csv/tsv/json/jsonl/parquet files with
its packaged builders, hub datasets by name. Delimited files are read with every column as a
string, so ids such as ``0024`` or ``4983`` reach the task code exactly as written.
"""

from __future__ import annotations

import csv
import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config.schema import TableConfig
from embsel_mlflow.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

QUOTING = {
    "minimal": csv.QUOTE_MINIMAL,
    "all": csv.QUOTE_ALL,
    "nonnumeric": csv.QUOTE_NONNUMERIC,
    "none": csv.QUOTE_NONE,
}
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet")
_EXTENSION_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}
_READER_FIELDS = ("format", "delimiter", "header", "column_names", "quoting", "encoding")


def load_table(
    table: TableConfig,
    *,
    root: str | Path,
    defaults: TableConfig | None = None,
    required: Sequence[str] = (),
    where: str = "",
) -> tuple[pd.DataFrame, str]:
    """Load ``table`` and rename its columns to task roles.

    Args:
        table: the table config; its None reader options inherit from ``defaults``.
        root: directory that relative ``table.path`` values resolve against (``data.root``).
        defaults: shared reader options (``data.reader``).
        required: roles that must be present, mapped via ``table.columns`` or same-named.
        where: config path of ``table`` (e.g. ``data.splits.test``), used in error messages.

    Returns:
        The frame (role columns renamed, other columns kept) and the resolved source:
        the absolute file path, or the hub dataset id.
    """
    where = where or "table"
    options = with_reader_defaults(table, defaults)
    if table.hub and table.path:
        raise ConfigError(
            f"{where}: set either path or hub, not both (path={table.path!r}, hub={table.hub!r})"
        )
    if table.hub:
        frame, source = _read_hub(options, where), table.hub
    elif table.path:
        path = resolve_path(table.path, root)
        _check_file(path, table.path, root, where)
        frame, source = _read_local(path, options, where), str(path)
    else:
        raise ConfigError(f"{where}: no data source; set {where}.path (a local file) or {where}.hub")
    return rename_roles(frame, table.columns, required=required, source=source, where=where), source


def with_reader_defaults(table: TableConfig, defaults: TableConfig | None) -> TableConfig:
    """Return ``table`` with its unset (None) reader options taken from ``defaults``."""
    if defaults is None:
        return table
    inherited = {
        name: getattr(defaults, name)
        for name in _READER_FIELDS
        if getattr(table, name) is None and getattr(defaults, name) is not None
    }
    return dataclasses.replace(table, **inherited)


def resolve_path(path: str | Path, root: str | Path) -> Path:
    """Absolute path of ``path``: as is when absolute, else under ``root`` (itself relative to cwd)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = Path(root).expanduser() / candidate
    return candidate.resolve()


def rename_roles(
    frame: pd.DataFrame,
    columns: dict[str, str],
    *,
    required: Sequence[str] = (),
    source: str,
    where: str,
) -> pd.DataFrame:
    """Rename mapped source columns to their roles and check that every required role exists."""
    available = [str(c) for c in frame.columns]
    for role, column in columns.items():
        if column not in frame.columns:
            raise DataError(
                f"{where}.columns.{role}: column {column!r} not found in {source}; "
                f"available columns: {available}{_bom_hint(available)}. Fix {where}.columns.{role}"
            )
    for role in required:
        if role not in columns and role not in frame.columns:
            raise DataError(
                f"{where}: column {role!r} not found in {source}; available columns: {available}"
                f"{_bom_hint(available)}. Set {where}.columns.{role} to the column that holds the {role}"
            )
    sources = list(columns.values())
    shared = {c for c in sources if sources.count(c) > 1}
    if shared:
        roles = sorted(r for r, c in columns.items() if c in shared)
        raise ConfigError(f"{where}.columns: roles {roles} map to the same column {sorted(shared)}")
    # An unmapped column that happens to carry a role's name would clash with the mapped one.
    shadowed = [role for role in columns if role in frame.columns and role not in sources]
    frame = frame.drop(columns=shadowed)
    return frame.rename(columns={column: role for role, column in columns.items()})


def _bom_hint(available: list[str]) -> str:
    # "\ufeff" survives in json keys; "ï»¿" is the UTF-8 BOM decoded as latin-1/cp1252.
    if available and available[0].startswith(("\ufeff", "ï»¿")):
        return " (the first name starts with a byte-order mark: set encoding: utf-8-sig)"
    return ""


def _check_file(path: Path, configured: str, root: str | Path, where: str) -> None:
    if path.is_file():
        return
    problem = "is a directory, not a file" if path.is_dir() else "not found"
    raise DataError(
        f"{where}.path: {path} {problem} (path {configured!r}, data.root={str(root)!r}); "
        f"fix {where}.path or data.root"
    )


def _file_format(path: Path, options: TableConfig, where: str) -> str:
    fmt = (options.format or _EXTENSION_FORMATS.get(path.suffix.lower(), "")).lower()
    if fmt in FORMATS:
        return fmt
    if options.format:
        raise ConfigError(f"{where}.format: unknown format {options.format!r}; use one of {list(FORMATS)}")
    raise DataError(
        f"{where}: cannot tell the format of {path} from its extension; set {where}.format "
        f"(or data.reader.format) to one of {list(FORMATS)}"
    )


def _read_local(path: Path, options: TableConfig, where: str) -> pd.DataFrame:
    import datasets
    import pyarrow as pa

    fmt = _file_format(path, options, where)
    if fmt in ("csv", "tsv"):
        builder, kwargs = "csv", _csv_kwargs(path, fmt, options, where)
    elif fmt in ("json", "jsonl"):
        builder, kwargs = "json", {"encoding": options.encoding or "utf-8"}
    else:
        builder, kwargs = "parquet", {}
    # A throw-away cache: the file is parsed as it is now (never a stale cached copy of an
    # edited file) and nothing accumulates in ~/.cache for every file a user points us at.
    with tempfile.TemporaryDirectory(prefix="embsel-datasets-") as cache_dir:
        try:
            dataset = datasets.load_dataset(
                builder,
                data_files=str(path),
                split="train",
                cache_dir=cache_dir,
                keep_in_memory=True,
                **kwargs,
            )
        except (datasets.exceptions.DatasetGenerationError, ValueError, OSError, pa.ArrowException) as exc:
            raise DataError(
                f"{where}: cannot read {path} as {fmt}: {_root_cause(exc)}; {_options_hint(where, fmt)}"
            ) from exc
        return dataset.to_pandas()


def _csv_kwargs(path: Path, fmt: str, options: TableConfig, where: str) -> dict[str, Any]:
    """Options for the ``datasets`` csv builder (it forwards them to ``pandas.read_csv``)."""
    import datasets
    import pandas as pd

    quoting_name = (options.quoting or "minimal").lower()
    if quoting_name not in QUOTING:
        raise ConfigError(f"{where}.quoting: unknown value {options.quoting!r}; use one of {list(QUOTING)}")
    header = options.header is not False
    if not header and not options.column_names:
        raise ConfigError(f"{where}: header is false, so set {where}.column_names to name the file's columns")
    kwargs: dict[str, Any] = {
        "sep": options.delimiter or ("\t" if fmt == "tsv" else ","),
        "header": 0 if header else None,  # with column_names, a header row is replaced by them
        "quoting": QUOTING[quoting_name],
        "encoding": options.encoding or "utf-8",
        # Only truly missing fields become null: "NA", "null" or "None" are real text.
        "keep_default_na": False,
    }
    names = list(options.column_names or [])
    if names:
        kwargs["column_names"] = names
    else:
        # The builder can only read columns as strings through `features`, which must name them.
        try:
            names = [str(c) for c in pd.read_csv(path, nrows=0, **kwargs).columns]
        except (ValueError, OSError) as exc:
            raise DataError(
                f"{where}: cannot read the header of {path}: {_root_cause(exc)}; {_options_hint(where, fmt)}"
            ) from exc
    kwargs["features"] = datasets.Features({name: datasets.Value("string") for name in names})
    return kwargs


def _options_hint(where: str, fmt: str) -> str:
    if fmt in ("csv", "tsv"):
        return f"check {where}.format, delimiter, header, column_names, quoting and encoding (or data.reader)"
    return f"check {where}.format and encoding (or data.reader)"


def _read_hub(options: TableConfig, where: str) -> pd.DataFrame:
    import datasets

    if not options.split:
        raise ConfigError(f"{where}.split: set the split of hub dataset {options.hub!r} to load (e.g. test)")
    try:
        dataset = datasets.load_dataset(options.hub, options.subset, split=options.split)
    except Exception as exc:  # network, auth, unknown dataset/subset/split: all end the same way
        subset = f" subset {options.subset!r}" if options.subset else ""
        raise DataError(
            f"{where}: could not load hub dataset {options.hub!r}{subset} split {options.split!r} "
            f"({_first_line(exc)}); without network access, download it elsewhere and set {where}.path "
            f"to a local csv/jsonl/parquet copy (relative to data.root) instead of {where}.hub"
        ) from exc
    return dataset.to_pandas()


def _root_cause(exc: BaseException) -> str:
    """The innermost chained exception, as ``Type: first line`` (datasets wraps parser errors)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
