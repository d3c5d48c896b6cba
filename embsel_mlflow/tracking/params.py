"""Turn a resolved config into MLflow params: dotted keys, masked secrets, bounded values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Keys whose values must never reach the store (tokens, passwords, keys).
SECRET_KEY_PATTERN = re.compile(
    r"(token|passw(or)?d|secret|api[_-]?key|access[_-]?key|private[_-]?key|credential)", re.IGNORECASE
)
MASK = "***"
# MLflow's limit on a param value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
MAX_PARAM_VALUE_LENGTH = 6000
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. /]")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(key.rsplit(".", 1)[-1]))


def mask_secrets(value: Any) -> Any:
    """A copy of a nested dict/list structure with secret-looking keys masked."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_secret_key(str(k)) and v is not None else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


def mask_override(override: str) -> str:
    """``model.token=abc`` -> ``model.token=***``; other overrides unchanged."""
    key, sep, _ = override.partition("=")
    return f"{key}={MASK}" if sep and is_secret_key(key.lstrip("+~")) else override


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists stay leaves (logged as their string form)."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return {prefix: value}
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "value") and hasattr(value, "name"):  # Enum
        return str(value.value)
    return str(value)


def config_to_params(
    config: Mapping[str, Any], max_length: int = MAX_PARAM_VALUE_LENGTH
) -> tuple[dict[str, str], list[str]]:
    """Params for every leaf of ``config`` (secrets masked) and the keys whose values were truncated."""
    params: dict[str, str] = {}
    truncated: list[str] = []
    for key, value in flatten(mask_secrets(config)).items():
        text = _format(value)
        if len(text) > max_length:
            marker = "...[truncated]"
            text = text[: max_length - len(marker)] + marker
            truncated.append(key)
        params[_INVALID_KEY_CHARS.sub("_", key)] = text
    return params, truncated
