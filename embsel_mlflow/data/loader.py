"""Read one table (local files or a hub dataset split) into a DataFrame with task-role columns.

Delimited, json and parquet files go through Hugging Face ``datasets``' packaged builders, hub
datasets by name; line formats (``format: regex``) are matched line by line. Delimited files are
read with every column as a string, so ids such as ``0024`` or ``4983`` reach the task code
exactly as written. A table may be made of several files (a list or a glob in ``path``); they
are read with the same options and joined in order.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import dataclasses
import glob
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import TableConfig
from embsel_mlflow.errors import ConfigError, DataError, first_line

if TYPE_CHECKING:
    import pandas as pd

QUOTING = {
    "minimal": csv.QUOTE_MINIMAL,
    "all": csv.QUOTE_ALL,
    "nonnumeric": csv.QUOTE_NONNUMERIC,
    "none": csv.QUOTE_NONE,
}
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "regex")
_EXTENSION_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}
_READER_FIELDS = ("format", "delimiter", "header", "column_names", "quoting", "encoding", "pattern")
# Escapes a shell or a Hydra override delivers literally (``delimiter="\t"`` arrives as 2 characters).
_DELIMITER_ESCAPES = {"\\t": "\t", "tab": "\t"}
_GLOB_CHARS = re.compile(r"[*?[]")
# Frame attribute listing (first row, file) for each file of a multi-file table.
FILES_ATTR = "embsel_files"


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
        The frame (role columns renamed, other columns kept) and the resolved source: the
        absolute file path (several joined by ", "), or the hub dataset id. For local files
        ``frame.attrs[FILES_ATTR]`` lists ``(first row, path)`` of each file, for error messages.
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
        paths = table_paths(table.path, root, where)
        frame = _read_files(paths, options, where)
        source = ", ".join(str(path) for path in paths)
    else:
        raise ConfigError(f"{where}: no data source; set {where}.path (a local file) or {where}.hub")
    files = frame.attrs.get(FILES_ATTR)
    frame = rename_roles(frame, table.columns, required=required, source=source, where=where)
    if files is not None:
        frame.attrs[FILES_ATTR] = files
    return frame, source


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


def resolve_path(path: str | Path, root: str | Path, where: str = "") -> Path:
    """Absolute path of ``path``: as is when absolute, else under ``root`` (itself relative to cwd)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = Path(root).expanduser() / candidate
    try:
        return candidate.resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        key = f"{where}.path: " if where else ""
        raise DataError(
            f"{key}cannot resolve {candidate} ({first_line(exc, with_type=True)}); "
            "it is probably a symlink loop, fix or remove the link"
        ) from exc


def table_paths(path: Any, root: str | Path, where: str) -> list[Path]:
    """The files of ``path``: one path, a glob, or a list of them; each checked to be a readable file."""
    entries = [path] if isinstance(path, str | Path) else list(path)
    if not entries or not all(isinstance(entry, str | Path) and str(entry) for entry in entries):
        raise ConfigError(f"{where}.path: give a file, a glob or a list of files, got {path!r}")
    files: list[tuple[Path, str]] = []  # (resolved file, what the config said)
    for entry in map(str, entries):
        if not _GLOB_CHARS.search(entry):
            files.append((resolve_path(entry, root, where), entry))
            continue
        pattern = Path(entry).expanduser()
        if not pattern.is_absolute():
            pattern = Path(root).expanduser() / pattern
        matches = sorted(glob.glob(str(pattern)))
        if not matches:
            raise DataError(
                f"{where}.path: the glob {entry!r} matches no file under data.root={str(root)!r}; "
                f"fix {where}.path or data.root"
            )
        files += [(resolve_path(match, root, where), entry) for match in matches]
    for file, configured in files:
        check_file(file, configured, root, where)
    return [file for file, _ in files]


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


def check_file(path: Path, configured: str, root: str | Path, where: str) -> None:
    """Refuse a path that is not a non-empty file this process may read, with the fix."""
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "not found"
        raise DataError(
            f"{where}.path: {path} {problem} (path {configured!r}, data.root={str(root)!r}); "
            f"fix {where}.path or data.root"
        )
    if not os.access(path, os.R_OK):
        raise DataError(_permission_message(path, where))
    if path.stat().st_size == 0:
        raise DataError(f"{where}.path: {path} is empty (0 bytes); point {where}.path at a file with data")


def _permission_message(path: Path, where: str) -> str:
    return (
        f"{where}: cannot read {path}: permission denied; make it readable for this user "
        f"(e.g. chmod a+r {path}) or copy it somewhere readable"
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


def _read_files(paths: list[Path], options: TableConfig, where: str) -> pd.DataFrame:
    """Read each file with the same options; several files must have the same columns."""
    import pandas as pd

    frames = [_read_local(path, options, where) for path in paths]
    columns = [str(c) for c in frames[0].columns]
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        if [str(c) for c in frame.columns] != columns:
            raise DataError(
                f"{where}: {path} has columns {[str(c) for c in frame.columns]}, but {paths[0]} has "
                f"{columns}; the files of one table must have the same columns"
            )
    starts, row = [], 0
    for path, frame in zip(paths, frames, strict=True):
        starts.append((row, str(path)))
        row += len(frame)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame.attrs[FILES_ATTR] = starts
    return frame


def _read_local(path: Path, options: TableConfig, where: str) -> pd.DataFrame:
    import datasets
    import pyarrow as pa

    fmt = _file_format(path, options, where)
    encoding = options.encoding or "utf-8"
    _check_encoding_name(encoding, where)
    if fmt == "regex":
        return _read_lines(path, options, where)
    if fmt in ("csv", "tsv"):
        builder, kwargs = "csv", _csv_kwargs(path, fmt, options, where)
    elif fmt in ("json", "jsonl"):
        # Arrow's JSON reader does not validate text: a bad byte would surface later as a crash.
        _check_decodes(path, options, where)
        builder, kwargs = "json", {"encoding": encoding}
    else:
        builder, kwargs = "parquet", {}
    # A throw-away cache: the file is parsed as it is now (never a stale cached copy of an
    # edited file) and nothing accumulates in ~/.cache for every file a user points us at.
    with tempfile.TemporaryDirectory(prefix="embsel-datasets-") as cache_dir, _quiet_datasets():
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
            raise _read_error(exc, path, fmt, options, where) from exc
        frame = dataset.to_pandas()
        del dataset  # the Arrow copy: only the frame is kept
        return frame


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars or INFO lines on the console while a file is read."""
    import datasets
    from datasets.utils import logging as ds_logging

    bars_were_on = not datasets.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(ds_logging.CRITICAL)  # its ERROR lines repeat what our error says
    try:
        yield
    finally:
        ds_logging.set_verbosity(verbosity)
        if bars_were_on:
            datasets.enable_progress_bars()


def _check_encoding_name(encoding: str, where: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(
            f"{where}.encoding: unknown encoding {encoding!r}; use e.g. utf-8, utf-8-sig or latin-1"
        ) from None


def _read_error(exc: BaseException, path: Path, fmt: str, options: TableConfig, where: str) -> DataError:
    """The one-line DataError for a file the parser refused, with the fix for the likely cause."""
    cause = _innermost(exc)
    if isinstance(cause, PermissionError):
        return DataError(_permission_message(path, where))
    if isinstance(cause, UnicodeDecodeError):
        return DataError(_encoding_message(path, options, where, cause))
    hint = _options_hint(where, fmt)
    return DataError(f"{where}: cannot read {path} as {fmt}: {first_line(cause, with_type=True)}; {hint}")


def _encoding_message(path: Path, options: TableConfig, where: str, cause: UnicodeDecodeError) -> str:
    """Name the row (and line) of the first undecodable byte and the encoding that would read it."""
    encoding = options.encoding or "utf-8"
    line, byte = _first_undecodable_line(path, encoding)
    has_header = _file_format(path, options, where) in ("csv", "tsv") and options.header is not False
    row = line - 1 if has_header else line
    location = f"row {row} (line {line} of the file)" if has_header else f"row {row}"
    suggestion = "latin-1" if codecs.lookup(encoding).name != "latin-1" else "utf-8"
    if line == 0:  # the decoder failed where a line scan cannot point (e.g. a truncated file)
        location = f"byte {cause.start}"
    return (
        f"{where}: {path} is not valid {encoding}: byte {byte} at {location}; set {where}.encoding "
        f"(or data.reader.encoding) to the file's encoding, e.g. encoding: {suggestion}"
    )


def _check_decodes(path: Path, options: TableConfig, where: str) -> None:
    """Decode the whole file in 1 MiB blocks; the first bad byte is a DataError naming its row."""
    decoder = codecs.getincrementaldecoder(options.encoding or "utf-8")()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except PermissionError:
        raise DataError(_permission_message(path, where)) from None
    except UnicodeDecodeError as exc:
        raise DataError(_encoding_message(path, options, where, exc)) from None


def _first_undecodable_line(path: Path, encoding: str) -> tuple[int, str]:
    """(1-based line number, the offending byte as 0xNN) of the first decoding error; (0, "?") if none."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start : exc.start + 1] if isinstance(exc.object, bytes) else b""
                return number, f"0x{bad.hex()}" if bad else "?"
    return 0, "?"


def _read_lines(path: Path, options: TableConfig, where: str) -> pd.DataFrame:
    """``format: regex``: every non-blank line must match ``pattern``; its named groups are the columns."""
    import pandas as pd

    pattern = _line_pattern(options.pattern, where)
    encoding = options.encoding or "utf-8"
    columns = list(pattern.groupindex)
    rows: list[tuple[str | None, ...]] = []
    try:
        with path.open(encoding=encoding, newline=None) as handle:  # universal newlines: CRLF too
            lines = handle.read().splitlines()
    except PermissionError:
        raise DataError(_permission_message(path, where)) from None
    except UnicodeDecodeError as exc:
        raise DataError(_encoding_message(path, options, where, exc)) from None
    if options.header:
        lines = lines[1:]
    for number, line in enumerate(lines, start=2 if options.header else 1):
        if not line.strip():
            continue  # blank lines (e.g. a trailing one) are not rows
        match = pattern.fullmatch(line)
        if match is None:
            raise DataError(
                f"{where}: line {number} of {path} does not match {where}.pattern {pattern.pattern!r}: "
                f"{line[:80]!r}; fix the pattern (it must match the whole line) or the file"
            )
        rows.append(match.groups())
    return pd.DataFrame.from_records(rows, columns=columns).astype(object)


def _line_pattern(text: str | None, where: str) -> re.Pattern[str]:
    if not text:
        raise ConfigError(
            f"{where}.pattern: format regex needs a pattern with named groups, e.g. "
            "pattern: '(?P<label>[^:]+):(?P<fine>\\S+) (?P<text>.+)'"
        )
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(f"{where}.pattern: invalid regular expression {text!r}: {exc}") from None
    if not pattern.groupindex:
        raise ConfigError(
            f"{where}.pattern: {text!r} has no named groups; name each column with (?P<name>...)"
        )
    if len(pattern.groupindex) != pattern.groups:
        raise ConfigError(
            f"{where}.pattern: {text!r} has unnamed groups; use (?:...) for groups that are not columns"
        )
    return pattern


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
        "sep": delimiter(options.delimiter, fmt, where),
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
            error = _read_error(exc, path, fmt, options, where)
            if isinstance(_innermost(exc), UnicodeDecodeError | PermissionError):
                raise error from exc
            raise DataError(
                f"{where}: cannot read the header of {path}: {_root_cause(exc)}; {_options_hint(where, fmt)}"
            ) from exc
    kwargs["features"] = datasets.Features({name: datasets.Value("string") for name in names})
    return kwargs


def delimiter(value: str | None, fmt: str, where: str) -> str:
    """The field separator: ``value`` with command-line escapes ("\\t") read as the character."""
    if value is None or value == "":
        return "\t" if fmt == "tsv" else ","
    value = _DELIMITER_ESCAPES.get(value.lower(), value)
    if len(value) != 1:
        raise ConfigError(
            f"{where}.delimiter (or data.reader.delimiter): {value!r} is not one character; use e.g. ',' "
            "or a tab "
            f'(in YAML "\\t", on the command line \'{where}.delimiter="\\t"\' or format: tsv)'
        )
    return value


def _options_hint(where: str, fmt: str) -> str:
    if fmt in ("csv", "tsv"):
        return f"check {where}.format, delimiter, header, column_names, quoting and encoding (or data.reader)"
    return f"check {where}.format and encoding (or data.reader)"


def _read_hub(options: TableConfig, where: str) -> pd.DataFrame:
    import datasets

    if not options.split:
        raise ConfigError(f"{where}.split: set the split of hub dataset {options.hub!r} to load (e.g. test)")
    try:
        with _quiet_datasets():
            dataset = datasets.load_dataset(options.hub, options.subset, split=options.split)
    except Exception as exc:  # network, auth, unknown dataset/subset/split: all end the same way
        subset = f" subset {options.subset!r}" if options.subset else ""
        raise DataError(
            f"{where}: could not load hub dataset {options.hub!r}{subset} split {options.split!r} "
            f"({first_line(exc, with_type=True)}); without network access, download it elsewhere and set "
            f"{where}.path to a local csv/jsonl/parquet copy (relative to data.root) instead of {where}.hub"
        ) from exc
    return dataset.to_pandas()


def _root_cause(exc: BaseException) -> str:
    """The innermost chained exception, as ``Type: first line`` (datasets wraps parser errors)."""
    return first_line(_innermost(exc), with_type=True)


def _innermost(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc
