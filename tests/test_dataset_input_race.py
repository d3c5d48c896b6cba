"""Parallel jobs of one sweep log the same dataset: the loser of MLflow's check-then-insert retries.

The race is made real and deterministic at the database: just before this run's ``INSERT INTO
datasets``, another connection inserts and commits the same (experiment, name, digest) row, as a
parallel job that passed the same check a moment earlier would.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy import event

from embsel_mlflow.data.task_data import TableInfo
from embsel_mlflow.tracking.run_logger import RunLogger


def _table(tmp_path: Path) -> TableInfo:
    frame = pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "score": [1.0, 2.0]})
    path = tmp_path / "test.csv"
    frame.to_csv(path, index=False)
    return TableInfo(role="test", source=str(path), frame=frame)


def _race_once(client: MlflowClient, db: Path) -> list[str]:
    """Before the first dataset insert, commit the same row from another connection."""
    engine = client._tracking_client.store.engine
    raced: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if raced or not statement.lstrip().upper().startswith("INSERT INTO DATASETS"):
            return
        row = parameters[0] if executemany else parameters
        values = list(row.values()) if isinstance(row, dict) else list(row)
        other = sqlite3.connect(db)
        with other:
            placeholders = ", ".join("?" * len(values))
            columns = statement.split("(", 1)[1].split(")", 1)[0]
            # the other job's row: same key, its own uuid
            values[0] = uuid.uuid4().hex
            other.execute(f"INSERT INTO datasets ({columns}) VALUES ({placeholders})", values)
        other.close()
        raced.append(values[0])

    event.listen(engine, "before_cursor_execute", before)
    return raced


def test_a_run_that_loses_the_dataset_insert_race_links_to_the_winners_row(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.create_experiment("race")
    run = client.create_run(experiment)
    raced = _race_once(client, db)

    refs = RunLogger(client, run.info.run_id).log_datasets([_table(tmp_path)], dataset_name="demo")

    assert len(raced) == 1, "the injected race did not happen, so this test checks nothing"
    (logged,) = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == (refs["test"].name, refs["test"].digest)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT dataset_uuid FROM datasets").fetchall()
        query = "SELECT source_id FROM inputs WHERE destination_id = ?"
        (input_row,) = conn.execute(query, (run.info.run_id,))
    assert rows == [(raced[0],)]  # one dataset row: the winner's
    assert input_row == (raced[0],)  # and this run links to it


class _CountingClient(MlflowClient):
    """The real client, counting its ``log_inputs`` calls."""

    calls = 0

    def log_inputs(self, *args, **kwargs):
        self.calls += 1
        return super().log_inputs(*args, **kwargs)


def test_other_store_errors_are_raised_at_once_not_retried(tmp_path: Path) -> None:
    client = _CountingClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.create_run(client.create_experiment("deleted"))
    client.delete_run(run.info.run_id)
    with pytest.raises(Exception, match=r"must be in the 'active' state"):
        RunLogger(client, run.info.run_id).log_datasets([_table(tmp_path)], dataset_name="demo")
    assert client.calls == 1
