"""`embsel select` end to end on tiny models, against a real sqlite store in a tmp dir."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.entrypoints import select as select_entrypoint
from embsel_mlflow.jobs.select import select_job

CHAMPION = "tiny_champion"
# Small statistics and efficiency samples: tests check the plumbing, not the precision.
FAST = [
    "evaluation.show_progress=false",
    "select.resamples=200",
    "select.efficiency.sample_size=32",
    "select.efficiency.latency_queries=8",
]


def _store_override(cwd: Path) -> str:
    # Explicit and absolute: MLflow caches one store per URI string within a process.
    return f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"


def _select(args: list[str], cwd: Path) -> int:
    """Run `embsel select` in process (Hydra app included), in ``cwd``."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return select_entrypoint.main([*args, _store_override(cwd)])
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.chdir(previous)


def _tiny_candidates(bert: Path, st: Path) -> list[str]:
    # Two option names of conf/model/ pointed at the tiny models: mean-pooled BERT and the tiny ST.
    return [
        "candidates=[transformers_mean,e5_base]",
        f"candidates.transformers_mean.name_or_path={bert}",
        "candidates.transformers_mean.name=tiny_mean",
        f"candidates.e5_base.name_or_path={st}",
        "candidates.e5_base.name=tiny_e5",
    ]


def _store(cwd: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def _runs(cwd: Path) -> list:
    client = _store(cwd)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _fixture_args(tiny_bert_dir: Path, tiny_st_dir: Path, cwd: Path) -> list[str]:
    # the cache dir explicitly: a module fixture runs before the per-test EMBSEL_CACHE_DIR is set
    return [
        *_tiny_candidates(tiny_bert_dir, tiny_st_dir),
        "datasets=[demo_sts,demo_retrieval]",
        *FAST,
        f"select.register={CHAMPION}",
        f"cache.dir={cwd / 'cache'}",
    ]


@pytest.fixture(scope="module")
def selected(tiny_bert_dir: Path, tiny_st_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cwd = tmp_path_factory.mktemp("select")
    args = _fixture_args(tiny_bert_dir, tiny_st_dir, cwd)
    code = _select(args, cwd)
    runs = _runs(cwd)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return code, cwd, parent, children


def test_one_parent_with_one_finished_child_per_pair(selected) -> None:
    code, _, parent, children = selected
    assert code == 0
    assert parent.info.status == "FINISHED"
    pairs = sorted(c.info.run_name for c in children)
    assert pairs == sorted(
        f"{m}@{d}" for m in ("transformers_mean", "e5_base") for d in ("demo_sts", "demo_retrieval")
    )
    assert all(c.info.status == "FINISHED" for c in children)


def test_children_on_one_dataset_share_one_profile(selected) -> None:
    """The first child on a dataset profiles it (evaluate's path); the next one reuses it by digest."""
    _, _, _, children = selected
    for dataset in ("demo_sts", "demo_retrieval"):
        first, second = sorted(
            (c for c in children if c.data.tags["embsel.dataset"] == dataset), key=lambda c: c.info.start_time
        )
        assert first.data.tags["embsel.profile.run_id"] == first.info.run_id
        assert second.data.tags["embsel.profile.run_id"] == first.info.run_id
        assert second.data.tags["embsel.profile.reused"] == "true"


def test_child_logs_what_evaluate_logs(selected, tiny_bert_dir: Path, tmp_path: Path) -> None:
    from embsel_mlflow.entrypoints import evaluate

    _, _, _, children = selected
    child = next(c for c in children if c.info.run_name == "transformers_mean@demo_retrieval")
    args = [
        "model=transformers_mean",
        f"model.name_or_path={tiny_bert_dir}",
        "model.name=tiny_mean",
        "data=demo_retrieval",
        "evaluation.show_progress=false",
        _store_override(tmp_path),
    ]
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(evaluate.main(args))
    assert exit_info.value.code == 0
    (alone,) = _runs(tmp_path)
    assert child.data.metrics["main_score"] == alone.data.metrics["main_score"]
    quality = {k: v for k, v in alone.data.metrics.items() if k.startswith("test/")}
    assert {k: child.data.metrics[k] for k in quality} == quality
    assert set(alone.data.metrics) <= set(child.data.metrics)
    assert {k for k in child.data.metrics if k not in alone.data.metrics} == {
        k for k in child.data.metrics if k.startswith("efficiency/")
    }
    same_params = {k: v for k, v in alone.data.params.items() if not k.startswith("tracking.")}
    assert {k: child.data.params.get(k) for k in same_params} == same_params
    client = _store(selected[1])
    artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"config.yaml", "overrides.yaml", "results.json", "per_item", "plots"} <= artifacts


def test_efficiency_metrics_for_every_child(selected) -> None:
    _, _, _, children = selected
    for child in children:
        metrics = child.data.metrics
        for key in (
            "texts_per_second",
            "tokens_per_second",
            "latency_p50_ms",
            "latency_p95_ms",
            "peak_memory_mb",
        ):
            assert metrics[f"efficiency/{key}"] > 0 or key == "peak_memory_mb", (child.info.run_name, key)
        assert metrics["efficiency/latency_p95_ms"] >= metrics["efficiency/latency_p50_ms"]
        assert metrics["efficiency/embedding_dim"] == 32 and metrics["efficiency/num_parameters"] > 0


def test_parent_holds_the_decision(selected) -> None:
    _, cwd, parent, children = selected
    client = _store(cwd)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "decision.json", "plots"} <= artifacts
    decision = json.loads(Path(client.download_artifacts(parent.info.run_id, "decision.json")).read_text())
    winner = parent.data.tags["embsel.winner"]
    assert winner in ("transformers_mean", "e5_base") and decision["winner"] == winner
    assert parent.data.tags["embsel.recommendation"].startswith(f"{winner}: ")
    description = parent.data.tags["mlflow.note.content"]
    assert description.startswith("**Recommendation:**")
    # markdown that renders as written: each score and CI in a code span, so "[low, high] (best)"
    # is no link and the verdict shows; counts as integers; no empty failure tag on a success
    assert re.search(r"`\d\.\d{4} \[-?\d\.\d{4}, -?\d\.\d{4}\]` \(best\)", description), description
    assert "] (" not in description.replace("]` (", "")
    assert "| 32 |" in description and "32.0" not in description  # dim
    assert "embsel.failed_children" not in parent.data.tags
    markdown = Path(client.download_artifacts(parent.info.run_id, "leaderboard.md")).read_text()
    assert "| candidate | demo_sts | demo_retrieval | mean | texts/s |" in markdown and "WINNER" in markdown
    import pandas as pd

    frame = pd.read_csv(client.download_artifacts(parent.info.run_id, "leaderboard.csv"))
    by_name = frame.set_index("candidate")
    for child in children:
        candidate, dataset = child.info.run_name.split("@")
        assert by_name.loc[candidate, dataset] == pytest.approx(child.data.metrics["main_score"], abs=1e-12)
        assert by_name.loc[candidate, f"{dataset} ci_low"] <= by_name.loc[candidate, dataset]
    plot = client.download_artifacts(parent.info.run_id, "plots/quality_vs_throughput.png")
    assert Path(plot).stat().st_size > 10_000


def _embed_in_process(tiny_dir: Path, name: str, texts: list[str]) -> np.ndarray:
    from embsel_mlflow.config import EvaluateJobConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.models.encoder import load_encoder

    model = "transformers_mean" if name == "transformers_mean" else "e5_base"
    cfg = compose_config("evaluate", [f"model={model}", f"model.name_or_path={tiny_dir}"])
    return load_encoder(to_job_config(cfg, EvaluateJobConfig, "evaluate").model).encode(texts)


TEXTS = ["A man is playing a guitar.", "How do I reset my card pin?", "The protein binds to the receptor."]


def test_champion_loads_in_a_fresh_process_with_equal_embeddings(
    selected, tiny_bert_dir: Path, tiny_st_dir: Path
) -> None:
    _, cwd, parent, _ = selected
    winner = parent.data.tags["embsel.winner"]
    assert parent.data.tags["embsel.registered_model"] == f"models:/{CHAMPION}@champion"
    expected = _embed_in_process(
        tiny_bert_dir if winner == "transformers_mean" else tiny_st_dir, winner, TEXTS
    )
    from tests.model_server import fresh_process_embeddings

    loaded = fresh_process_embeddings(
        f"models:/{CHAMPION}@champion", TEXTS, cwd=cwd, tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}"
    )
    assert loaded.shape == expected.shape
    assert np.abs(loaded - expected).max() < 1e-5
    settings = Path(_store(cwd).download_artifacts(parent.info.run_id, "champion/MLmodel")).read_text()
    assert "trust_remote_code" not in settings


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_champion_is_served_over_http(selected) -> None:
    from tests.model_server import served_embeddings

    _, cwd, _, _ = selected
    embeddings = served_embeddings(
        f"models:/{CHAMPION}@champion", TEXTS, cwd=cwd, tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}"
    )
    assert embeddings.shape == (len(TEXTS), 32)


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_mlflow_run_entry_point_nests_children_under_its_run(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from tests.test_mlflow_run import _mlflow_run

    overrides = " ".join(
        [
            "candidates=[transformers_mean]",
            f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
            "datasets=[demo_sts, demo_pair_classification]",
            *FAST,
        ]
    )
    proc, runs = _mlflow_run(tmp_path, overrides, entry_point="select")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.data.tags["embsel.entry_point"] == "select"
    assert sorted(c.info.run_name for c in children) == [
        "transformers_mean@demo_pair_classification",
        "transformers_mean@demo_sts",
    ]
    assert parent.data.tags["embsel.winner"] == "transformers_mean"


def test_static_champion_round_trips_through_pyfunc(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import mlflow.pyfunc

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.config import ModelConfig, StaticConfig
    from embsel_mlflow.models.cache import EmbeddingCache
    from embsel_mlflow.tracking.embedding_model import save_embedding_model

    cfg = ModelConfig(
        name="tiny_static",
        name_or_path=str(tiny_bert_dir),
        kind="static",
        normalize=True,
        query_prompt="query: ",
        static=StaticConfig(pca_dims=16),
    )
    model = build_encoder(cfg, cache=EmbeddingCache(tmp_path / "cache"))
    path = save_embedding_model(model, "tiny_static", tmp_path / "saved", cfg=cfg)
    loaded = mlflow.pyfunc.load_model(str(path))
    for role in (None, "query"):
        expected = model.inner.encode(TEXTS, role=role)
        got = loaded.predict(TEXTS, params={"role": role} if role else None)
        assert got.shape == (len(TEXTS), 16) and np.abs(got - expected).max() < 1e-5


def _quality_and_efficiency(run) -> dict[str, float]:
    return {
        k: v
        for k, v in run.data.metrics.items()
        if k.startswith(("test/", "efficiency/")) or k == "main_score"
    }


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_repeat_selection_reuses_measurements_and_loads_each_candidate_once(
    selected, tiny_bert_dir: Path, tiny_st_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second identical selection: efficiency reused (tagged, with the first measurement's date),
    identical metrics, cache hits logged; each candidate loaded once, registration included; the
    step returns the winner's mean main score (a sweep's objective)."""
    from embsel_mlflow.candidates import base as factory
    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.app import to_job_config

    _, cwd, first_parent, first_children = selected
    loads: list[str] = []
    build = factory.build_encoder
    monkeypatch.setattr(
        factory, "build_encoder", lambda cfg, **kw: loads.append(cfg.name) or build(cfg, **kw)
    )
    args = [*_fixture_args(tiny_bert_dir, tiny_st_dir, cwd), _store_override(cwd)]
    cfg = compose_config("select", args)
    objective = select_job(cfg, to_job_config(cfg.tracking, TrackingConfig, "select"), args)

    runs = _runs(cwd)
    parent = next(
        r
        for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.info.run_id != first_parent.info.run_id
    )
    children = {
        r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert isinstance(objective, float) and objective == parent.data.metrics["winner_mean_main_score"]
    assert sorted(loads) == ["tiny_e5", "tiny_mean"]  # no second load of the registered winner
    assert parent.data.tags["embsel.registered_version"] == "2"
    for first in first_children:
        again = children[first.info.run_name]
        assert first.data.tags["embsel.efficiency_source"] == "measured"
        assert again.data.tags["embsel.efficiency_source"] == "reused"
        measured_at = first.data.tags["embsel.efficiency_measured_at"]
        assert again.data.tags["embsel.efficiency_measured_at"] == measured_at
        assert _quality_and_efficiency(again) == _quality_and_efficiency(first)
        assert again.data.metrics["cache_hits"] > 0 and again.data.metrics["cache_misses"] == 0
