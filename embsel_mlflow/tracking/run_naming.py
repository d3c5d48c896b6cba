"""Run names a person recognises: ``<model>@<dataset>``, from the model's real identity."""

from __future__ import annotations

import re

# MLflow's generated run names: adjective-animal-NNN (mlflow.utils.name_utils).
_GENERATED_NAME = re.compile(r"^[a-z]+-[a-z]+-\d{1,3}$")


def model_display_name(name_or_path: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``; ``/models/bert/`` -> ``bert``."""
    return name_or_path.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or name_or_path


def run_name(name_or_path: str, dataset: str) -> str:
    return f"{model_display_name(name_or_path)}@{dataset}"


def is_generated_name(name: str | None) -> bool:
    """True for a name MLflow made up (e.g. a run created by ``mlflow run`` without --run-name)."""
    return not name or bool(_GENERATED_NAME.match(name))
