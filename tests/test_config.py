"""Hydra composition of conf/: every option composes and type-checks against the schemas."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from embsel_mlflow.config import (
    EvaluateJobConfig,
    JobConfig,
    ModelKind,
    ProfileJobConfig,
    ScoringJobConfig,
    SelectJobConfig,
    TaskType,
)
from embsel_mlflow.config.steps import step_summary
from embsel_mlflow.config.store import compose_config, config_dir, register_configs
from embsel_mlflow.jobs.app import config_error_message, preflight

CONF = config_dir()
MODEL_OPTIONS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
DATA_OPTIONS = sorted(p.stem for p in (CONF / "data").glob("*.yaml"))


def _compose(*overrides: str):
    return compose_config("evaluate", list(overrides))


def test_config_tree_is_the_top_level_conf_dir() -> None:
    assert Path(__file__).resolve().parents[1] / "conf" == CONF
    assert {"minilm", "transformers_mean"} <= set(MODEL_OPTIONS)
    assert {"demo_sts", "demo_retrieval", "stsb", "mrpc", "banking77", "scifact"} <= set(DATA_OPTIONS)


def test_default_config_is_minilm_on_the_bundled_sts_demo() -> None:
    job = OmegaConf.to_object(_compose())
    assert isinstance(job, EvaluateJobConfig)
    assert (job.model.name, job.data.name, job.data.task) == ("minilm", "demo_sts", TaskType.sts)
    assert job.model.trust_remote_code is False
    assert Path(job.data.root).is_dir()  # bundled inside the package


@pytest.mark.parametrize("model", MODEL_OPTIONS)
def test_every_model_option_composes(model: str) -> None:
    job = OmegaConf.to_object(_compose(f"model={model}", "model.name_or_path=some/model"))
    assert job.model.kind in ModelKind.__members__
    assert job.model.trust_remote_code is False


@pytest.mark.parametrize("data", DATA_OPTIONS)
def test_every_data_option_composes(data: str) -> None:
    job = OmegaConf.to_object(_compose(f"data={data}"))
    assert isinstance(job.data.task, TaskType)
    assert job.data.eval_split in job.data.splits


def test_shared_data_root_is_configurable() -> None:
    job = OmegaConf.to_object(_compose("data=stsb", "data.root=/somewhere/else"))
    assert job.data.root == "/somewhere/else"


@pytest.mark.parametrize(
    "override,needle",
    [
        ("model.nmae=x", "nmae"),  # misspelled key
        ("evaluation.seed=abc", "seed"),  # wrong type
        ("data.task=ranking", "ranking"),  # not a TaskType
        ("model=does_not_exist", "does_not_exist"),  # unknown group option
    ],
)
def test_bad_config_fails_at_compose_time_with_one_line(override: str, needle: str) -> None:
    register_configs()
    message = preflight("evaluate", [override])
    assert message is not None and needle in message
    assert "\n" not in message
    assert "embsel evaluate --cfg job" in message


def test_config_error_message_is_one_line_for_chained_errors() -> None:
    try:
        try:
            raise KeyError("inner\nline")
        except KeyError as inner:
            raise ValueError("outer\n  detail") from inner
    except ValueError as exc:
        message = config_error_message(exc, "evaluate")
    assert "\n" not in message and "outer" in message and "inner" in message


@pytest.mark.parametrize(
    ("step", "schema", "overrides"),
    [
        ("evaluate", EvaluateJobConfig, []),
        ("select", SelectJobConfig, []),
        ("profile", ProfileJobConfig, ["data=demo_sts"]),
    ],
)
def test_every_step_types_the_shared_job_fields(step: str, schema: type, overrides: list[str]) -> None:
    # tracking and profile come from the shared JobConfig base; evaluate/select add evaluation and cache
    job = OmegaConf.to_object(compose_config(step, [*overrides, "tracking.experiment=x"]))
    assert isinstance(job, schema) and isinstance(job, JobConfig) and job.tracking.experiment == "x"
    assert isinstance(job, ScoringJobConfig) == (step != "profile")
    register_configs()
    message = preflight(step, [*overrides, "profile.short_text_chars=abc"])
    assert message is not None and "short_text_chars" in message


@pytest.mark.parametrize("step", ["evaluate", "select", "profile"])
def test_each_step_help_describes_that_step(step: str) -> None:
    help_node = compose_config(step, with_hydra=True).hydra.help
    header, footer = help_node.header, help_node.footer
    assert header.startswith(f"embsel {step}: ") and f"usage: embsel {step} " in header
    examples = [line.strip() for line in footer.splitlines() if line.strip().startswith(("embsel", "mlflow"))]
    assert examples and all(f"embsel {step} " in line or f"-e {step} " in line for line in examples)
    assert ("score one embedding model" in header) == (step == "evaluate")


def test_shared_help_header_is_the_steps_line_of_embsel_help() -> None:
    # a step without a header of its own (evaluate, and any new step) gets its `embsel --help` line
    for step in ("evaluate", "train"):
        header = compose_config("evaluate", [f"hydra.job.name={step}"], with_hydra=True).hydra.help.header
        expected = step_summary(step)
        assert header.startswith(f"embsel {step}: {expected};")
