"""Find every config node of one schema inside a typed config (a job's candidates, datasets, windows)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def nodes_of(config: Any, schema: type[T]) -> Iterator[T]:
    """Each ``schema`` instance inside ``config`` (a dataclass, a mapping of them, or one), depth first."""
    if isinstance(config, schema):
        yield config
    elif isinstance(config, Mapping):
        for value in config.values():
            yield from nodes_of(value, schema)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        for item in dataclasses.fields(config):
            yield from nodes_of(getattr(config, item.name), schema)
