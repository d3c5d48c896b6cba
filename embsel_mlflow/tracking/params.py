"""Turn a resolved config into MLflow params: dotted keys, masked secrets, bounded values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Masking lives in tracking.secrets; re-exported here for callers that import it from params.
from embsel_mlflow.tracking.secrets import MASK, is_secret_key, mask_override, mask_secrets

__all__ = ["MASK", "config_to_params", "flatten", "is_secret_key", "mask_override", "mask_secrets"]

# MLflow's limit on a param value (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
MAX_PARAM_VALUE_LENGTH = 6000
_INVALID_KEY_CHARS = re.compile(r"[^\w\-. /]")


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
