"""Markdown for run descriptions (``mlflow.note.content``), which the MLflow UI renders.

The UI's renderer (showdown) turns ``[test] (sts)`` into a link and drops the words inside; a
``*`` or ``_`` starts emphasis. Every description built from names, paths or numbers goes
through ``escape`` (or ``code`` / ``table``), so it shows exactly the text it was given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# Characters that start markdown syntax somewhere in a line (links, emphasis, code, tables,
# headings, lists): the set showdown's ``encodeBackslashEscapes`` (the MLflow UI) honours. ``<``
# is not in it, so it becomes an entity instead (no html tag can start).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()>#+!~|\-])")


def escape(text: object) -> str:
    """``text`` with every markdown special character backslash-escaped: shows as written."""
    return _SPECIAL.sub(r"\\\1", str(text)).replace("<", "&lt;")


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
