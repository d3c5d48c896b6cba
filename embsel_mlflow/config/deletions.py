"""``~key`` on the command line for keys of the typed schema: reset the key to its schema default.

Hydra deletes ``~key`` from the composed config, but a key of a dataclass schema cannot be
deleted (OmegaConf: "does not support deletion"), and one whose value is null "does not exist".
For such keys deleting means "forget what the config set", i.e. the schema's default, so
``~data.reader.format`` becomes ``data.reader.format=null``. Other deletions (keys of plain
dicts such as ``~data.splits.train``) are left to Hydra.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

_UNKNOWN = object()
_REQUIRED = "???"  # omegaconf.MISSING: a required key has no default to go back to


def deletions_to_defaults(overrides: list[str], schema: type) -> list[str]:
    """``overrides`` with each plain ``~key`` of a scalar or list schema field as ``key=<default>``."""
    return [_rewrite(override, schema) for override in overrides]


def _rewrite(override: str, schema: type) -> str:
    if not override.startswith("~") or "=" in override:
        return override  # ~key=value keeps Hydra's "delete only if equal" meaning
    key = override[1:]
    default = schema_default(schema, key)
    if default is _UNKNOWN:
        return override
    return f"{key}={_render(default)}"


def schema_default(schema: type, key: str) -> Any:
    """The default of dataclass field ``key`` (dotted, through dict values), or ``_UNKNOWN``."""
    node: Any = schema
    parts = key.split(".")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if dataclasses.is_dataclass(node):
            fields = {field.name: field for field in dataclasses.fields(node)}
            if part not in fields:
                return _UNKNOWN
            if last:
                return _field_default(fields[part])
            node = _unwrap_optional(typing.get_type_hints(node)[part])
        elif typing.get_origin(node) is dict:
            if last:
                return _UNKNOWN  # a dict entry: Hydra deletes it
            node = _unwrap_optional(typing.get_args(node)[1])
        else:
            return _UNKNOWN
    return _UNKNOWN


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return _UNKNOWN
    if default == _REQUIRED:
        return _UNKNOWN
    if default is None or isinstance(default, bool | int | float | str | list):
        return default
    return _UNKNOWN  # a nested schema or a dict: merging {} would not reset it


def _unwrap_optional(annotation: Any) -> Any:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a quoted Hydra string: no grammar character is interpreted
    if isinstance(value, list):
        return "[" + ",".join(_render(item) for item in value) + "]"
    return str(value)
