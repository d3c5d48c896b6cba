"""The evaluated model as an MLflow 3 logged model, so the UI's Models views work.

One external logged model per model identity and experiment (weights live outside MLflow):
its params are the identity, every run that evaluates it links it as an input, and every
metric names it (``model_id``) together with the dataset it was measured on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from embsel_mlflow.models.identity import display_name
from embsel_mlflow.tracking.run_logger import RunLogger
from embsel_mlflow.tracking.secrets import mask_secrets

IDENTITY_TAG = "embsel.model_identity"
MODEL_TYPE = "embedding"


def identity_key(identity: dict[str, Any]) -> str:
    """A short stable hash of everything that changes the model's embeddings."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def link_logged_model(run: RunLogger, identity: dict[str, Any]) -> str:
    """The logged model of ``identity`` in the run's experiment (created if new), linked to the run."""
    from mlflow.entities import LoggedModelInput

    model_id = logged_model_of(run.client, run.experiment_id, identity, source_run_id=run.run_id)
    run.client.log_inputs(run.run_id, models=[LoggedModelInput(model_id)])
    return model_id


def logged_model_of(client: Any, experiment_id: str, identity: dict[str, Any], *, source_run_id: str) -> str:
    """The id of ``identity``'s logged model in ``experiment_id``: found, or created (named by its
    display name, its identity as params with secrets masked, e.g. a URL's password)."""
    from mlflow.entities import LoggedModelStatus
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

    key = identity_key(identity)
    found = client.search_logged_models(
        experiment_ids=[experiment_id], filter_string=f"tags.`{IDENTITY_TAG}` = '{key}'", max_results=1
    )
    if found:
        return str(found[0].model_id)
    params = mask_secrets({k: _text(v) for k, v in identity.items() if v is not None})
    model = client.create_logged_model(
        experiment_id=experiment_id,
        name=_entity_name(display_name(identity)),
        source_run_id=source_run_id,
        tags={IDENTITY_TAG: key, MLFLOW_MODEL_IS_EXTERNAL: "true"},
        params=params,
        model_type=MODEL_TYPE,
    )
    return str(client.finalize_logged_model(model.model_id, LoggedModelStatus.READY).model_id)


def link_model_version(client: Any, model_id: str, name: str, version: str) -> None:
    """Show registered version ``name``/``version`` on logged model ``model_id`` (the UI's Models tab
    and model page read the ``mlflow.modelVersions`` tag, as ``mlflow.register_model`` writes it)."""
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    existing = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    versions = json.loads(existing) if existing else []
    versions.append({"name": name, "version": str(version)})
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})


# A logged model's name may not hold these (MLflow refuses them): look-alike characters keep the
# display name readable (``static꞉all-MiniLM-L6-v2``, ``all-MiniLM-L6-v2∕bf16``, ``bge-small-en-v1․5``).
_NAME_LOOKALIKES = str.maketrans(
    {"/": "\u2215", ":": "\ua789", ".": "\u2024", "%": "\uff05", '"': "", "'": ""}
)


def _entity_name(name: str) -> str:
    """``name`` as a valid logged-model name."""
    return name.translate(_NAME_LOOKALIKES) or "model"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)  # as in the run's params
