"""Markdown for run descriptions (``mlflow.note.content``), which the MLflow UI renders.

The UI's renderer (showdown) turns ``[test] (sts)`` into a link and drops the words inside; a
``*`` or ``_`` starts emphasis. Every description built from names, paths or numbers goes
through ``escape`` (or ``code`` / ``table``), so it shows exactly the text it was given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Characters that start markdown syntax anywhere in a line (links, emphasis, code, tables,
# strike-through); ``(`` needs no escape once ``[`` and ``]`` have one. All are in the set that
# showdown's ``encodeBackslashEscapes`` (the MLflow UI) honours; ``<`` is not, so it becomes an
# entity (no html tag can start).
_INLINE = re.compile(r"([\\`*_\[\]|~])")
# Characters that start a block only at the start of a line: heading, list, quote, numbered list.
_LINE_START = re.compile(r"^(\s*)([#+\->])", re.MULTILINE)
_NUMBERED = re.compile(r"^(\s*\d+)\.", re.MULTILINE)


def escape(text: object) -> str:
    """``text`` with the markdown in it backslash-escaped, so it shows as written; the text stays
    readable raw (``cosine\\_spearman = 0.9: all-MiniLM-L6-v2 on stsb \\[test\\] (sts)``)."""
    escaped = _INLINE.sub(r"\\\1", str(text)).replace("<", "&lt;")
    escaped = _LINE_START.sub(lambda match: f"{match[1]}\\{match[2]}", escaped)
    return _NUMBERED.sub(r"\1\\.", escaped)


def code(text: object) -> str:
    """``text`` as an inline code span (shown verbatim), fenced by more backticks than it holds."""
    value = str(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table; every cell escaped (``|`` too), so names and numbers show as written."""
    lines = ["| " + " | ".join(escape(cell) for cell in header) + " |"]
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
