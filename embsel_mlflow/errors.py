"""User-facing errors: one line that names the problem and the fix."""

from __future__ import annotations


class EmbselError(Exception):
    """A problem with the user's input or environment, reported as a single line.

    The CLI prints ``error: <message>``, tags the MLflow run with it, marks the run FAILED
    and exits non-zero. Anything else that escapes is a bug and keeps its traceback.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line


class ConfigError(EmbselError):
    """The composed configuration is invalid (unknown key, wrong type, bad value)."""


class DataError(EmbselError):
    """A data file, column or value cannot be used for the task."""


class ModelError(EmbselError):
    """A model cannot be resolved or loaded."""


class StoreError(EmbselError):
    """The MLflow tracking store cannot be used: unreachable, unwritable, damaged or misnamed."""


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first line of a third-party exception's message (its type when it has none), to quote
    inside one of our one-line errors; ``with_type`` prefixes the type (``OSError: ...``)."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if with_type else lines[0]


class MediaError(DataError):
    """An image or audio input that cannot be used: names the row and the file, and the fix."""
