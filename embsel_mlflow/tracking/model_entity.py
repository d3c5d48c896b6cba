"""The evaluated model as an MLflow 3 logged model, so the UI's Models views work.

One external logged model per model identity and experiment (weights live outside MLflow):
its params are the identity, every run that evaluates it links it as an input, and every
metric names it (``model_id``) together with the dataset it was measured on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from embsel_mlflow.tracking.run_logger import RunLogger
from embsel_mlflow.tracking.run_naming import model_display_name

IDENTITY_TAG = "embsel.model_identity"
MODEL_TYPE = "embedding"


def identity_key(identity: dict[str, Any]) -> str:
    """A short stable hash of everything that changes the model's embeddings."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def link_logged_model(run: RunLogger, identity: dict[str, Any]) -> str:
    """The logged model of ``identity`` in the run's experiment (created if new), linked to the run."""
    from mlflow.entities import LoggedModelInput, LoggedModelStatus
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

    client = run.client
    experiment_id = run.experiment_id
    key = identity_key(identity)
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"tags.`{IDENTITY_TAG}` = '{key}'", max_results=1
    )
    if found:
        model_id = found[0].model_id
    else:
        model = client.create_logged_model(
            experiment_id=experiment_id,
            name=model_display_name(str(identity["name_or_path"])),
            source_run_id=run.run_id,
            tags={IDENTITY_TAG: key, MLFLOW_MODEL_IS_EXTERNAL: "true"},
            params={k: _text(v) for k, v in identity.items() if v is not None},
            model_type=MODEL_TYPE,
        )
        model_id = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY).model_id
    client.log_inputs(run.run_id, models=[LoggedModelInput(model_id)])
    return model_id


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)  # as in the run's params
