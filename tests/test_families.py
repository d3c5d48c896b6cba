"""A task family is one registered object: a toy family defined here runs through every step.

The toy family ("nearest label": each text is scored by whether its nearest other text, by
cosine, has the same label) lives only in this file. It is registered without touching the
package, given a data config through ``hydra.searchpath``, and run through ``embsel evaluate``,
``embsel select`` (two candidates, so the bootstrap statistics run) and ``embsel monitor`` (a
labelled window, so it is re-scored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from embsel_mlflow.data.tables import Tables, head, texts
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.evaluation.base import EvalTask, TaskOutput, TextEncoder
from embsel_mlflow.families import (
    FAMILIES,
    TaskFamily,
    get_family,
    load_task_data,
    register_family,
    unregister_family,
)
from tests.cli_harness import invoke, snapshot

TOY = "toy_nearest_label"
TOPICS = {
    "weather": ["rain falls on the town", "the sun is hot today", "snow and cold wind", "a storm at night"],
    "sport": ["the team won the match", "a goal in the last minute", "the runner beat the record"],
    "food": ["bread with butter and jam", "a bowl of hot soup", "fresh fruit for dessert", "rice and beans"],
}


# --------------------------------------------------------------------------- the toy family


@dataclass
class NearestLabelExamples:
    texts: list[str]
    labels: list[str]


class NearestLabelTask(EvalTask):
    """Leave-one-out 1-nearest-neighbour accuracy of the labels under cosine similarity."""

    task_type: ClassVar[str] = TOY
    main_score_name: ClassVar[str] = "nn_accuracy"
    examples_type: ClassVar[type] = NearestLabelExamples

    def _validate(self) -> None:
        ex: NearestLabelExamples = self.examples
        if len(set(ex.labels)) < 2 or len(ex.texts) < 3:
            raise DataError(f"{self._where()}: needs at least 3 texts and 2 labels")

    def _run(self, encoder: TextEncoder) -> TaskOutput:
        ex: NearestLabelExamples = self.examples
        embeddings = self._encode(encoder, ex.texts)
        unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)  # leave one out
        predicted = [ex.labels[j] for j in similarity.argmax(axis=1)]
        correct = [int(p == gold) for p, gold in zip(predicted, ex.labels, strict=True)]
        per_item = pd.DataFrame(
            {"text": ex.texts, "label": ex.labels, "predicted": predicted, "correct": correct}
        )
        return TaskOutput(scores={"nn_accuracy": float(np.mean(correct))}, per_item=per_item)


class NearestLabelFamily(TaskFamily):
    name: ClassVar[str] = TOY
    examples_type: ClassVar[type] = NearestLabelExamples
    task_class: ClassVar[type[EvalTask]] = NearestLabelTask
    window_columns: ClassVar[tuple[str, ...] | None] = ("text", "label")

    def build(self, tables: Tables, split: str, limit: int | None) -> NearestLabelExamples:
        loaded = tables.split(split, ["text", "label"])
        frame = head(tables, loaded, limit)
        return NearestLabelExamples(texts(frame, "text", loaded), texts(frame, "label", loaded, what="label"))

    def item_count(self, examples: Any) -> int:
        return len(examples.texts)

    def texts(self, examples: Any) -> dict[str | None, list[str]]:
        return {None: list(examples.texts)}

    def item_statistic(self, per_item: pd.DataFrame, indices: np.ndarray) -> np.ndarray:
        return per_item["correct"].to_numpy(dtype=np.float64)[indices].mean(axis=1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def toy_family() -> Iterator[TaskFamily]:
    family = register_family(NearestLabelFamily())
    yield family
    unregister_family(TOY)


def _frame() -> pd.DataFrame:
    rows = [(text, label) for label, items in TOPICS.items() for text in items]
    return pd.DataFrame(rows, columns=["text", "label"])


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A data config of the toy family under conf/data/, its table beside it."""
    _frame().to_csv(tmp_path / "toy.csv", index=False)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "toy_nn.yaml").write_text(
        f"name: toy_nn\ntask: {TOY}\nroot: {tmp_path}\nsplits:\n  test: {{path: toy.csv}}\n", encoding="utf-8"
    )
    return tmp_path


def _common(cwd: Path) -> list[str]:
    return [
        f"hydra.searchpath=[file://{cwd / 'conf'}]",
        f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}",
        "evaluation.show_progress=false",
    ]


def _statuses(cwd: Path) -> list[str]:
    return [run.status for run in snapshot(cwd / "mlflow.db").runs().values()]


# --------------------------------------------------------------------------- the registry


def test_the_registry_holds_the_toy_family_and_refuses_unknown_tasks_in_one_line(workspace: Path) -> None:
    assert get_family(TOY) is FAMILIES[TOY]
    with pytest.raises(ConfigError) as caught:
        get_family("ranking", dataset="d")
    message = str(caught.value)
    assert message.startswith("unknown task type 'ranking' for dataset 'd': use one of retrieval, sts")
    assert TOY in message and "\n" not in message


def test_the_loader_and_monitor_ask_the_family(workspace: Path) -> None:
    from embsel_mlflow.config import DataConfig, TableConfig
    from embsel_mlflow.monitoring.windows import task_texts

    cfg = DataConfig(
        name="toy_nn", task=TOY, root=str(workspace), splits={"test": TableConfig(path="toy.csv")}
    )
    data = load_task_data(cfg)
    assert data.task == TOY and isinstance(data.family, NearestLabelFamily)
    assert isinstance(data.examples, NearestLabelExamples) and len(data.examples.texts) == len(_frame())
    assert task_texts(data) == (list(_frame()["text"]), None)


def test_monitor_embeds_retrieval_queries_in_the_query_role() -> None:
    from omegaconf import OmegaConf

    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.monitoring.windows import task_texts

    job: Any = OmegaConf.to_object(compose_config("evaluate", ["data=demo_retrieval"]))
    data = load_task_data(job.data)
    texts, role = task_texts(data)
    assert role == "query" and texts == list(data.examples.queries.values())


# --------------------------------------------------------------------------- the steps


def test_evaluate_runs_the_toy_family(workspace: Path, tiny_bert_dir: Path) -> None:
    result = invoke(
        "evaluate",
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "model.name=tiny_mean",
        "data=toy_nn",
        *_common(workspace),
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = snapshot(workspace / "mlflow.db").runs().values()
    assert run.status == "FINISHED"
    assert 0.0 <= run.metrics["test/nn_accuracy"] <= 1.0
    assert run.tags["embsel.task"] == TOY


def test_select_ranks_two_candidates_on_the_toy_family(
    workspace: Path, tiny_bert_dir: Path, tiny_st_dir: Path
) -> None:
    result = invoke(
        "select",
        "candidates=[transformers_mean,e5_base]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "candidates.transformers_mean.name=tiny_mean",
        f"candidates.e5_base.name_or_path={tiny_st_dir}",
        "candidates.e5_base.name=tiny_e5",
        "datasets=[toy_nn]",
        "select.resamples=200",
        "select.efficiency.sample_size=8",
        "select.efficiency.latency_queries=4",
        *_common(workspace),
        cwd=workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = _statuses(workspace)
    assert len(statuses) == 3 and set(statuses) == {"FINISHED"}  # the parent and one child per candidate
    # the bootstrap interval of each candidate and the paired test between them, from the family's statistic
    rows = [line for line in result.stdout.splitlines() if line.startswith("| tiny_") or "[" in line]
    assert re.search(r"\| \d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\] \((best|tied, p=)", result.stdout), rows


def test_monitor_rescores_a_labelled_toy_window(workspace: Path, tiny_bert_dir: Path) -> None:
    _frame().iloc[::-1].to_csv(workspace / "week1.csv", index=False)  # labelled: text and label columns
    result = invoke(
        "monitor",
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "model.name=tiny_mean",
        "data=toy_nn",
        f"current.paths=[{workspace / 'week1.csv'}]",
        "monitor.drift.permutations=50",
        *_common(workspace),
        cwd=workspace,
    )
    assert result.returncode in (0, 3), result.stderr[-3000:]
    runs = snapshot(workspace / "mlflow.db").runs().values()
    assert {run.status for run in runs} == {"FINISHED"}
    (window,) = [run for run in runs if run.tags.get("embsel.monitor.window") == "week1"]
    assert window.metrics["quality/main_score"] == pytest.approx(window.metrics["test/nn_accuracy"])
