"""Make an experiment open well in the MLflow UI: classic runs table, embsel's columns, a direct link.

MLflow 3.17's UI opens every experiment on its GenAI pages unless the URL says
``workflowType=machine_learning`` (the sidebar's "GenAI / Model training" switch, kept per
browser); the ``mlflow.experimentKind`` tag is honoured by older 3.x UIs and the experiment's
kind selector. So embsel tags the experiment, stores a saved view (the UI's "Views" menu) with
the columns that matter, and prints a link that opens the runs table in that view.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from typing import TYPE_CHECKING

from embsel_mlflow.errors import ConfigError
from embsel_mlflow.tracking.store import default_artifact_location, sqlite_path, validate_experiment_name

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML_KIND = "custom_model_development"  # "Model training" rather than "GenAI"
VIEW_KEY = "embsel"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"  # where the UI keeps saved views
VIEW_NAME = "embsel: model, dataset, main score"
# Columns of the saved view, in the UI's column-key syntax.
VIEW_COLUMNS = (
    "attributes.`Dataset`",
    "attributes.`Models`",
    "params.`task`",
    "params.`model.name_or_path`",
    "params.`data.name`",
    "tags.`main_score_name`",
    "metrics.`main_score`",
)
DEFAULT_UI_URL = "http://127.0.0.1:5000"


def experiment_ui_tags() -> dict[str, str]:
    """Tags that make the UI treat the experiment as classic ML runs and offer embsel's view."""
    return {EXPERIMENT_KIND_TAG: CLASSIC_ML_KIND, VIEW_TAG: _saved_view()}


def prepare_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Add the UI tags an experiment lacks (also to experiments made before embsel set them)."""
    tags = client.get_experiment(experiment_id).tags
    for key, value in experiment_ui_tags().items():
        if key not in tags:
            client.set_experiment_tag(experiment_id, key, value)


def runs_url(tracking_uri: str, experiment_id: str) -> str:
    """The runs table of the experiment, in embsel's view, on the server for ``tracking_uri``."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else DEFAULT_UI_URL
    return (
        f"{base}/#/experiments/{experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"
    )


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    """One line telling the user where to look: the link, and the command that serves it if needed."""
    line = f"runs: {runs_url(tracking_uri, experiment_id)}"
    db = sqlite_path(tracking_uri)
    if db is not None:
        line += f"  (after `mlflow ui --backend-store-uri {tracking_uri}`)"
    return line


def _saved_view() -> str:
    """A saved view in the format the UI writes (JSON state, zlib-deflated, base64)."""
    state = {
        "searchFilter": "",
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "selectedColumns": list(VIEW_COLUMNS),
        "columnOrder": [],
        "columnWidths": {},
        "runsHiddenMode": "FIRST_10_RUNS",
        "viewMaximized": False,
        "runListHidden": False,
        "isAccordionReordered": False,
        "useGroupedValuesInCharts": True,
        "hideEmptyCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }
    packed = base64.b64encode(zlib.compress(json.dumps(state).encode())).decode()
    now = int(time.time() * 1000)
    return json.dumps({"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": f"deflate;{packed}"})


def _check_active(experiment) -> None:
    if experiment.lifecycle_stage != "active":
        raise ConfigError(
            f"experiment '{experiment.name}' is deleted; restore it with `mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}` or choose another tracking.experiment"
        )


def get_or_create_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a sqlite store) if missing.

    Either way it carries the tags that make the MLflow UI show it as classic runs.
    """
    from mlflow.exceptions import MlflowException

    validate_experiment_name(name)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        _check_active(experiment)
        prepare_experiment(client, experiment.experiment_id)
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=default_artifact_location(uri, name), tags=experiment_ui_tags()
        )
    except MlflowException:
        # Another process created it between our lookup and create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id
