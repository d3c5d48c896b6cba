"""Batched logging into one MLflow run.

Everything goes through ``MlflowClient.log_batch``: on sqlite, 50 separate ``log_metric``
calls take ~1.6 s while one batch of 50 takes ~0.02 s.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from embsel_mlflow.data.task_data import TableInfo

# MLflow's per-request limits (mlflow.utils.validation).
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_TAG_VALUE_LENGTH = 5000


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class RunLogger:
    client: MlflowClient
    run_id: str

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        entries = [Param(k, v) for k, v in params.items()]
        for batch in _chunks(entries, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=batch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(k, str(v)[:MAX_TAG_VALUE_LENGTH]) for k, v in tags.items() if v is not None]
        for batch in _chunks(entries, MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=batch)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for batch in _chunks(entries, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """A table the MLflow UI can display (JSON), e.g. per-query scores."""
        self.client.log_table(self.run_id, data=frame, artifact_file=artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_datasets(self, tables: Iterable[TableInfo], dataset_name: str) -> None:
        """Each loaded table as a run input, with MLflow's content digest."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        inputs = []
        for table in tables:
            dataset = mlflow.data.from_pandas(
                table.frame, source=table.source, name=f"{dataset_name}/{table.role}"
            )
            inputs.append(
                DatasetInput(
                    dataset=dataset._to_mlflow_entity(),
                    tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=table.role)],
                )
            )
        if inputs:
            self.client.log_inputs(self.run_id, datasets=inputs)
