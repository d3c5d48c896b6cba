"""Run names a person recognises, one rule for every step: ``<model>@<dataset>``.

``<model>`` is the model's display name (``models.identity``: ``static:all-MiniLM-L6-v2``,
``all-MiniLM-L6-v2/bf16``, ``all-MiniLM-L6-v2+ft(1a2b3c4d)``); a step adds its context in front
(``train all-MiniLM-L6-v2@stsb``, a sweep job's ``#3 all-MiniLM-L6-v2@stsb``).
"""

from __future__ import annotations

import re
from typing import Any

# MLflow's generated run names: adjective-animal-NNN (mlflow.utils.name_utils).
_GENERATED_NAME = re.compile(r"^[a-z]+-[a-z]+-\d{1,3}$")


def model_display_name(name_or_path: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``; ``/models/bert/`` -> ``bert``."""
    from embsel_mlflow.models.identity import short_name

    return short_name(name_or_path)


def run_name(model: Any, dataset: Any, *, context: str | None = None) -> str:
    """``[<context> ]<model>@<dataset>``.

    ``model``: a model config (``ModelConfig`` or its composed node, named by
    ``models.identity.config_display_name``), an identity dict (``display_name``), or a display
    name already made; ``dataset``: its name; ``context``: the step's or job's, e.g. ``train``,
    ``#3``, ``finetune``.
    """
    from embsel_mlflow.models.identity import config_display_name, display_name

    if isinstance(model, str):
        name = model
    elif isinstance(model, dict):
        name = display_name(model)
    else:
        name = config_display_name(model)
    return f"{context} {name}@{dataset}" if context else f"{name}@{dataset}"


def job_run_name(cfg: Any, *, context: str | None = None) -> str:
    """The run name of a composed job config: its ``model`` @ its ``data.name`` (``context`` first)."""
    from omegaconf import OmegaConf

    model = OmegaConf.select(cfg, "model", default=None, throw_on_missing=False)
    data = OmegaConf.select(cfg, "data.name", default="data", throw_on_missing=False)
    return run_name(model if model is not None else "model", data, context=context)


def is_generated_name(name: str | None) -> bool:
    """True for a name MLflow made up (e.g. a run created by ``mlflow run`` without --run-name)."""
    return not name or bool(_GENERATED_NAME.match(name))
