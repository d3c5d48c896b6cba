"""Log the winner as an MLflow pyfunc model and register it with the ``champion`` alias.

The logging itself is the shared path of every step (``tracking.embedding_model``): a custom
pyfunc over the saved model directory, trust_remote_code off, explicit pip requirements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embsel_mlflow.errors import ModelError
from embsel_mlflow.tracking.embedding_model import log_embedding_model

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from embsel_mlflow.config import ModelConfig

ARTIFACT_PATH = "champion"


def not_registrable(name: str, kind: str, *, datasets: int = 1) -> ModelError:
    """The error for a winner that is no embedding model to register (LSA, BM25), or a kind fitted
    per dataset ranked on ``datasets`` > 1 (which of its fits would be the champion?)."""
    from embsel_mlflow.candidates import get_kind

    found = get_kind(kind)
    if found.fitted_per_dataset and found.registrable and datasets > 1:
        return ModelError(
            f"candidate '{name}' (kind {kind}) is fitted per dataset and was fitted on {datasets} datasets: "
            "select over one dataset to register its fit there, or drop select.register"
        )
    registrable = [k.name for k in _registrable_kinds(found.modalities)]
    return ModelError(
        f"candidate '{name}' (kind {kind}) cannot be registered as an embedding model; "
        f"choose a candidate of a kind that can ({', '.join(registrable)}), or drop select.register"
    )


def _registrable_kinds(modalities: frozenset[str]) -> list[Any]:
    """Registered kinds that can be logged and embed at least ``modalities``."""
    from embsel_mlflow.candidates import KINDS

    return [kind for kind in KINDS.values() if kind.registrable and modalities <= kind.modalities]


def register_champion(
    client: MlflowClient,
    run_id: str,
    model: Any,
    candidate: str,
    registered_name: str,
    alias: str,
    *,
    cfg: ModelConfig | None = None,
) -> str:
    """Log the champion into run ``run_id``, register it as ``registered_name`` with ``alias``.

    ``cfg`` is the candidate's model config (default: the model's own ``config``). Returns the
    new model version.
    """
    logged = log_embedding_model(
        client,
        run_id,
        model,
        candidate,
        artifact_path=ARTIFACT_PATH,
        cfg=cfg,
        register=registered_name,
        alias=alias,
        tags={"embsel.candidate": candidate},
    )
    return str(logged.version)
