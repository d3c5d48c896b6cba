"""`evaluate` links its data's profile to its run: computed the first time, reused by data digest
after that (from an earlier evaluate or an `embsel profile` run), computed again when the data
changes; `profile.link=false` turns it off. Real Hydra, real sqlite store, tiny model, in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from embsel_mlflow.profiling import profile as profile_module
from tests.cli_harness import invoke

DEMO_STS = Path(__file__).resolve().parents[1] / "embsel_mlflow" / "demo_data" / "sts"


@pytest.fixture
def profiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the datasets ``profile_tables`` profiled in this process (counts the real calls)."""
    calls: list[str] = []
    real = profile_module.profile_tables

    def counting(tables, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["name"])
        return real(tables, **kwargs)

    monkeypatch.setattr(profile_module, "profile_tables", counting)
    return calls


def _evaluate(cwd: Path, tiny_bert_dir: Path, *extra: str) -> dict[str, str]:
    """One tiny-model evaluate run; its tags."""
    result = invoke(
        "evaluate",
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}",
        "evaluation.show_progress=false",
        *extra,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (newest, *_) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`mlflow.runName` != ''",
        order_by=["attributes.start_time DESC"],
    )
    return {"run_id": newest.info.run_id, **newest.data.tags}


def _artifacts(cwd: Path, run_id: str, path: str = "") -> list[str]:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    return [a.path for a in client.list_artifacts(run_id, path)]


def test_evaluate_computes_then_reuses_the_profile_and_recomputes_for_changed_data(
    tmp_path: Path, tiny_bert_dir: Path, profiled: list[str]
) -> None:
    first = _evaluate(tmp_path, tiny_bert_dir)
    assert profiled == ["demo_sts"]
    assert first["embsel.profile.run_id"] == first["run_id"]
    assert first["embsel.profile.reused"] == "false"
    assert first["embsel.profile.path"] == "profile/profile.json"
    assert set(_artifacts(tmp_path, first["run_id"], "profile")) == {
        "profile/profile.json",
        "profile/summary.txt",
    }
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    saved = json.loads(Path(client.download_artifacts(first["run_id"], "profile/profile.json")).read_text())
    assert saved["name"] == "demo_sts" and saved["tables"]["test"]["rows"] == 60
    assert saved["finding_counts"] == {
        s: int(first[f"embsel.profile.{s}"]) for s in ("error", "warn", "info")
    }
    digest = first["embsel.profile.digest.test"]
    (logged,) = client.get_run(first["run_id"]).inputs.dataset_inputs
    assert logged.dataset.digest == digest  # the run input's own digest is the key

    second = _evaluate(tmp_path, tiny_bert_dir, "evaluation.seed=7")
    assert profiled == ["demo_sts"]  # not profiled again
    assert second["embsel.profile.run_id"] == first["run_id"]
    assert second["embsel.profile.reused"] == "true"
    assert second["embsel.profile.path"] == "profile/profile.json"
    assert [second[f"embsel.profile.{s}"] for s in ("error", "warn", "info")] == [
        first[f"embsel.profile.{s}"] for s in ("error", "warn", "info")
    ]
    assert "embsel.profile.digest.test" not in second  # the profile lives in the first run only
    assert "profile" not in _artifacts(tmp_path, second["run_id"])

    changed = tmp_path / "changed"
    shutil.copytree(DEMO_STS, changed / "sts")
    table = changed / "sts" / "test.csv"
    table.write_text(table.read_text().replace("A man is playing a guitar", "A man is playing a violin", 1))
    third = _evaluate(tmp_path, tiny_bert_dir, f"data.root={changed}")
    assert profiled == ["demo_sts", "demo_sts"]
    assert third["embsel.profile.run_id"] == third["run_id"] != first["run_id"]
    assert third["embsel.profile.digest.test"] != digest


def test_profile_link_false_links_nothing(tmp_path: Path, profiled: list[str]) -> None:
    from embsel_mlflow.config import ProfileConfig, TaskType, TrackingConfig
    from embsel_mlflow.data.task_data import TableInfo
    from embsel_mlflow.profiling.link import link_profile
    from embsel_mlflow.tracking.run import tracked_run

    tables = [TableInfo("test", str(DEMO_STS / "test.csv"), pd.read_csv(DEMO_STS / "test.csv"))]
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for link in (False, True):
        with tracked_run(tracking, entry_point="evaluate", run_name=f"link={link}") as run:
            refs = run.log_datasets(tables, dataset_name="demo_sts")
            linked = link_profile(
                run, tables, refs, name="demo_sts", task=TaskType.sts, eval_split="test",
                cfg=ProfileConfig(link=link), root=tmp_path,
            )  # fmt: skip
            tags = run.client.get_run(run.run_id).data.tags
        assert (linked is None) == (not link)
        assert any(key.startswith("embsel.profile.") for key in tags) == link
    assert profiled == ["demo_sts"]


def test_evaluate_links_the_profile_of_an_embsel_profile_run(
    tmp_path: Path, tiny_bert_dir: Path, profiled: list[str]
) -> None:
    result = invoke(
        "profile",
        "data=demo_sts",
        "profile.report_html=false",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (profile_run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    evaluated = _evaluate(tmp_path, tiny_bert_dir)
    assert profiled == ["demo_sts"]  # the profile step's own; evaluate reused it
    assert evaluated["embsel.profile.run_id"] == profile_run.info.run_id
    assert evaluated["embsel.profile.path"] == "profile.json"
    assert "profile.json" in _artifacts(tmp_path, profile_run.info.run_id)
    assert evaluated["embsel.profile.warn"] == profile_run.data.tags["embsel.profile.warn"]
