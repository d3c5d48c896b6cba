"""`embsel monitor` end to end: a tiny model, the bundled demo data, a real sqlite store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from embsel_mlflow.entrypoints.monitor import main
from embsel_mlflow.jobs import monitor

FAST = ["monitor.drift.permutations=200", "evaluation.n_experiments=2"]
STRANGE = [f"zq{i}x ### 0x{i:04x} {'@' * (i % 5 + 1)} 9{i}9 ~~ qqq" for i in range(40)]


def _monitor(args: list[str], cwd: Path) -> int:
    """`embsel monitor` in process (the Hydra app included), in ``cwd``."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return main([*args, f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}"])
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        os.chdir(previous)


def _runs(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _demo_test() -> pd.DataFrame:
    from embsel_mlflow.data import demo_data_dir

    return pd.read_csv(demo_data_dir() / "classification" / "test.csv")


def _model(bert: Path) -> list[str]:
    return ["model=transformers_mean", f"model.name_or_path={bert}", "model.name=tiny_mean"]


@pytest.fixture(scope="module")
def monitored(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three windows, named against their time order: labelled, shuffled labels, strange texts."""
    cwd = tmp_path_factory.mktemp("monitor")
    windows = cwd / "windows"
    windows.mkdir()
    same = _demo_test().assign(ts="2026-01-01T00:00:00Z")
    same.to_csv(windows / "c_same.csv", index=False)
    labels = same["label"].to_numpy().copy()
    np.random.default_rng(0).shuffle(labels)
    while (labels == same["label"].to_numpy()).mean() > 0.3:
        np.random.default_rng(1).shuffle(labels)
    same.assign(label=labels, ts="2026-01-02T00:00:00Z").to_csv(windows / "b_shuffled.csv", index=False)
    pd.DataFrame({"text": STRANGE, "ts": "2026-01-03T06:00:00Z"}).to_csv(
        windows / "a_strange.csv", index=False
    )
    args = [
        *_model(tiny_bert_dir),
        "data=demo_classification",
        "current.dir=windows",
        "current.order_by=timestamp",
        "current.timestamp_column=ts",
        *FAST,
    ]
    code = _monitor(args, cwd)
    return code, cwd, args


def test_one_parent_one_child_per_window_with_verdicts(monitored) -> None:
    code, cwd, _ = monitored
    assert code == 3  # drift and a quality drop were detected
    runs = _runs(cwd)
    assert all(run.info.status == "FINISHED" for run in runs)
    parents = [r for r in runs if r.data.tags.get(monitor.ROLE_TAG) == monitor.PARENT]
    assert len(parents) == 1
    parent = parents[0]
    children = {
        r.data.tags["embsel.monitor.window"]: r
        for r in runs
        if r.data.tags.get(monitor.ROLE_TAG) == monitor.WINDOW
    }
    assert set(children) == {"c_same", "b_shuffled", "a_strange"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())
    # ordered by the timestamp column, not by name
    assert {name: r.data.tags[monitor.STEP_TAG] for name, r in children.items()} == {
        "c_same": "0",
        "b_shuffled": "1",
        "a_strange": "2",
    }
    status = {name: r.data.tags[monitor.STATUS_TAG] for name, r in children.items()}
    assert status == {"c_same": "ok", "b_shuffled": "quality_drop", "a_strange": "drift"}
    for child in children.values():
        assert {f"drift.{m}" for m in ("mean_cosine", "mean_euclidean", "mmd", "classifier", "ks")} <= set(
            child.data.tags
        )
        assert child.data.tags["drift.mmd"] in ("true", "false")
    assert children["a_strange"].data.tags["drift.mmd"] == "true"
    assert children["c_same"].data.tags["drift.mmd"] == "false"  # the reference's own texts
    # quality: the labelled window scores what the reference scores; shuffled labels drop
    same, shuffled = children["c_same"].data.metrics, children["b_shuffled"].data.metrics
    assert same["quality/drop"] == pytest.approx(0.0, abs=1e-9) and same["quality/alert"] == 0.0
    assert shuffled["quality/drop"] > 0.02 and shuffled["quality/alert"] == 1.0
    assert "test/accuracy" in shuffled  # the evaluation logged what `embsel evaluate` logs
    assert "quality/main_score" not in children["a_strange"].data.metrics  # unlabelled
    assert parent.data.tags[monitor.STATUS_TAG] == "drift"  # the latest window's verdict
    assert "accuracy=" in parent.data.tags[monitor.BASELINE_TAG]


def test_parent_holds_the_time_series_and_the_plots(monitored) -> None:
    _, cwd, _ = monitored
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    parent = next(r for r in _runs(cwd) if r.data.tags.get(monitor.ROLE_TAG) == monitor.PARENT)
    history = sorted(client.get_metric_history(parent.info.run_id, "drift/mmd/p_value"), key=lambda m: m.step)
    assert [m.step for m in history] == [0, 1, 2]
    expected = [pd.Timestamp(t).value // 10**6 for t in ("2026-01-01", "2026-01-02", "2026-01-03T06:00:00Z")]
    assert [m.timestamp for m in history] == expected
    assert history[2].value < 0.05 < history[0].value
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots == {"plots/projection.png", "plots/timeseries.png"}
    child = next(r for r in _runs(cwd) if r.data.tags.get("embsel.monitor.window") == "a_strange")
    shifted = Path(client.download_artifacts(child.info.run_id, "monitor/shifted_texts.md")).read_text()
    assert "zq" in shifted and "nearest reference texts" in shifted


def test_rerun_of_the_same_windows_logs_nothing_new(monitored, tiny_bert_dir: Path) -> None:
    code, cwd, args = monitored
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    before = _runs(cwd)
    parent = next(r for r in before if r.data.tags.get(monitor.ROLE_TAG) == monitor.PARENT)
    assert _monitor(args, cwd) == code
    after = _runs(cwd)
    assert sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
    assert len(client.get_metric_history(parent.info.run_id, "drift/mmd/p_value")) == 3
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    # a new window continues the same parent's series at the next step
    (cwd / "windows" / "d_next.csv").write_text(
        "text,ts\n" + "\n".join(f"{t},2026-01-04" for t in STRANGE[:20])
    )
    assert _monitor(args, cwd) == 3
    history = client.get_metric_history(parent.info.run_id, "drift/mmd/p_value")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]
    assert len(_runs(cwd)) == len(before) + 1


@pytest.fixture(scope="module")
def bad_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the bad-input cases (a new sqlite store costs its migrations)."""
    cwd = tmp_path_factory.mktemp("monitor_bad")
    np.save(cwd / "ref.npy", np.ones((30, 7), dtype=np.float32))  # 30 reference texts, 7 dims
    return cwd


@pytest.mark.parametrize(
    ("window", "extra", "message"),
    [
        ("text\n", [], "the window is empty"),
        ("text\n" + "\n".join(f"photos/img_{i:03d}.jpg" for i in range(20)) + "\n", [], "image paths"),
        (
            "text\n" + "\n".join(STRANGE) + "\n",
            ["model_uri=models:/no_such_model@champion"],
            "cannot load the reference model models:/no_such_model@champion",
        ),
        ("text\n" + "\n".join(STRANGE) + "\n", ["monitor.reference_embeddings=ref.npy"], "7 dims but window"),
        (None, [], "current.paths: window file"),
    ],
    ids=["empty", "modality", "model", "dims", "missing"],
)
def test_bad_input_is_one_line_exit_2_and_a_failed_run(
    window: str | None, extra: list[str], message: str, tiny_bert_dir: Path, bad_cwd: Path, capsys
) -> None:
    path = bad_cwd / f"window_{abs(hash(message))}.csv"
    if window is not None:  # None: a window file that does not exist
        path.write_text(window, encoding="utf-8")
    model = [] if any(arg.startswith("model_uri") for arg in extra) else _model(tiny_bert_dir)
    code = _monitor([*model, "data=demo_classification", f"current.paths=[{path}]", *FAST, *extra], bad_cwd)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], errors
    runs = _runs(bad_cwd)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    latest = max(runs, key=lambda r: r.info.end_time or 0)
    assert latest.info.status == "FAILED" and message in latest.data.tags["error"]


def _registered_champion(tmp_path: Path, tiny_st_dir: Path, metric: str, value: float) -> str:
    """A select-like source run that logged ``metric``, its model registered as tiny_embedder@champion;
    a labelled window in ``tmp_path``. Returns the source run's id."""
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.config import ModelConfig
    from embsel_mlflow.selection.champion import register_champion

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    source = client.create_run(client.create_experiment("embsel"), run_name="select").info.run_id
    client.log_metric(source, metric, value)  # what select logs per dataset
    cfg = ModelConfig(name="tiny_st", name_or_path=str(tiny_st_dir))
    register_champion(client, source, build_encoder(cfg), "tiny_st", "tiny_embedder", "champion", cfg=cfg)
    client.set_terminated(source)
    _demo_test().to_csv(tmp_path / "labelled.csv", index=False)
    return source


def _by_role(cwd: Path) -> dict[str, Any]:
    """The monitor's runs in ``cwd`` by role (parent, window, baseline), one each."""
    return {r.data.tags[monitor.ROLE_TAG]: r for r in _runs(cwd) if monitor.ROLE_TAG in r.data.tags}


CHAMPION = [
    "model_uri=models:/tiny_embedder@champion",
    "data=demo_classification",
    "current.paths=[labelled.csv]",
]


def test_registered_champion_is_monitored_with_its_source_run_as_baseline(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    source = _registered_champion(tmp_path, tiny_st_dir, "tiny_st/demo_classification", 0.9)
    code = _monitor([*CHAMPION, *FAST], tmp_path)
    parent, child = (_by_role(tmp_path)[role] for role in (monitor.PARENT, monitor.WINDOW))
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["embsel.monitor.model_version"] == "1"
    assert parent.data.tags[monitor.BASELINE_TAG] == f"tiny_st/demo_classification=0.9 from run {source}"
    assert child.data.metrics["quality/baseline"] == pytest.approx(0.9)
    assert code == (3 if child.data.metrics["quality/drop"] > 0.02 else 0)


def test_a_champion_whose_selection_did_not_cover_the_dataset_is_baselined_on_the_reference(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    """The source run scored demo_sts only: monitoring demo_classification scores its reference data."""
    # another dataset's score: no baseline for this one
    source = _registered_champion(tmp_path, tiny_st_dir, "tiny_st/demo_sts", 0.7)
    code = _monitor([*CHAMPION, *FAST], tmp_path)
    assert code in (0, 3) and {r.info.status for r in _runs(tmp_path)} == {"FINISHED"}
    parent, child, baseline = (
        _by_role(tmp_path)[r] for r in (monitor.PARENT, monitor.WINDOW, monitor.BASELINE)
    )
    score = baseline.data.metrics["main_score"]
    assert parent.data.tags[monitor.BASELINE_TAG] == (
        f"accuracy={score:.6g} from reference data (run {baseline.info.run_id})"
    )
    assert child.data.metrics["quality/baseline"] == pytest.approx(score) != 0.7
    # a baseline run named by the user must hold the score: one line, exit 2 (on a new window)
    _demo_test().head(20).to_csv(tmp_path / "labelled_2.csv", index=False)
    named = [*CHAMPION[:2], "current.paths=[labelled_2.csv]", f"monitor.quality.baseline_run_id={source}"]
    assert _monitor([*named, *FAST], tmp_path) == 2


def test_retrieval_windows_given_as_data_configs_are_rescored(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Judged queries (qrels) in a window: nDCG@10 against the reference's; shuffled qrels alert."""
    import random

    from embsel_mlflow.data import demo_data_dir

    demo = demo_data_dir() / "retrieval"
    header, *rows = (demo / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    pairs = [row.split("\t") for row in rows]
    docs = [doc for _, doc, _ in pairs]
    random.Random(0).shuffle(docs)
    shuffled = [f"{query}\t{doc}\t{score}" for (query, _, score), doc in zip(pairs, docs, strict=True)]
    (tmp_path / "shuffled_qrels.tsv").write_text("\n".join([header, *shuffled]) + "\n", encoding="utf-8")
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "judged_week.yaml").write_text(
        f"name: judged_week\ntask: retrieval\nroot: {demo}\n"
        "corpus: {path: corpus.jsonl, columns: {id: _id}}\n"
        "queries: {path: queries.jsonl, columns: {id: _id}}\n"
        f"splits:\n  test: {{path: {tmp_path / 'shuffled_qrels.tsv'}, "
        "columns: {query_id: query-id, doc_id: corpus-id}}\n",
        encoding="utf-8",
    )
    args = [
        *_model(tiny_bert_dir),
        "data=demo_retrieval",
        "windows=[demo_retrieval,judged_week]",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        *FAST,
    ]
    code = _monitor(args, tmp_path)
    children = {
        r.data.tags["embsel.monitor.window"]: r
        for r in _runs(tmp_path)
        if r.data.tags.get(monitor.ROLE_TAG) == monitor.WINDOW
    }
    same, judged = children["demo_retrieval"], children["judged_week"]
    baseline = same.data.metrics["quality/baseline"]
    assert same.data.metrics["quality/main_score"] == pytest.approx(baseline)  # the reference's own qrels
    assert same.data.tags["embsel.monitor.status"] == "ok"
    assert judged.data.metrics["quality/baseline"] == pytest.approx(baseline)
    assert (
        judged.data.metrics["quality/drop"] > 0.1
        and judged.data.tags["embsel.monitor.status"] == "quality_drop"
    )
    # scored by the retrieval evaluator, as `evaluate` logs it
    assert judged.data.metrics["test/ndcg_at_10"] == pytest.approx(judged.data.metrics["quality/main_score"])
    assert code == 3


def test_judged_query_window_files_are_rescored_against_the_reference_corpus(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """One row per query and judged document (a click log): drift on the distinct queries, nDCG@10 of
    the judged ones against the reference's corpus; the reference's own judgments score the baseline,
    shuffled ones alert."""
    import json

    from embsel_mlflow.data import demo_data_dir

    demo = demo_data_dir() / "retrieval"
    queries = {
        q["_id"]: q["text"] for q in map(json.loads, (demo / "queries.jsonl").read_text().splitlines())
    }
    qrels = pd.read_csv(demo / "qrels" / "test.tsv", sep="\t", dtype=str)
    judged = pd.DataFrame({"query": qrels["query-id"].map(queries), "clicked": qrels["corpus-id"]})
    assert len(judged) > judged["query"].nunique()  # some queries have several judged documents
    unjudged = pd.DataFrame({"query": ["a query nobody clicked a result of"], "clicked": [None]})
    pd.concat([judged, unjudged]).to_csv(tmp_path / "a_week1.csv", index=False)
    shuffled = judged.assign(clicked=judged["clicked"].sample(frac=1, random_state=0).to_numpy())
    shuffled.to_csv(tmp_path / "b_week2.csv", index=False)
    args = [
        *_model(tiny_bert_dir),
        "data=demo_retrieval",
        "current.paths=[a_week1.csv,b_week2.csv]",
        "+current.table.columns.text=query",
        "+current.table.columns.doc_id=clicked",
        *FAST,
    ]
    code = _monitor(args, tmp_path)
    children = {
        r.data.tags["embsel.monitor.window"]: r
        for r in _runs(tmp_path)
        if r.data.tags.get(monitor.ROLE_TAG) == monitor.WINDOW
    }
    week1, week2 = children["a_week1"].data, children["b_week2"].data
    assert week1.metrics["window/texts"] == judged["query"].nunique() + 1  # its distinct queries
    assert week1.metrics["quality/main_score"] == pytest.approx(week1.metrics["quality/baseline"])
    assert week1.tags["embsel.monitor.status"] == "ok"
    assert week2.metrics["quality/drop"] > 0.1 and week2.tags["embsel.monitor.status"] == "quality_drop"
    assert week2.metrics["test/ndcg_at_10"] == pytest.approx(week2.metrics["quality/main_score"])
    written = list((tmp_path / "embsel-cache" / "judged-queries").glob("*/qrels.tsv"))
    assert len(written) == 2  # one per window, named by its digest
    assert code == 3


def test_a_judged_document_outside_the_reference_corpus_is_one_line_exit_2(
    tiny_bert_dir: Path, tmp_path: Path, capsys
) -> None:
    texts = [f"query number {i} about cells" for i in range(6)]
    pd.DataFrame({"text": texts, "doc_id": ["d01"] * 5 + ["not_in_corpus"]}).to_csv(
        tmp_path / "w.csv", index=False
    )
    code = _monitor([*_model(tiny_bert_dir), "data=demo_retrieval", "current.paths=[w.csv]", *FAST], tmp_path)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == 1 and "'not_in_corpus'" in errors[0] and "w.csv" in errors[0]
    assert {r.info.status for r in _runs(tmp_path)} == {"FAILED"}


def test_retrieval_queries_are_embedded_in_the_query_role_from_evaluates_cache(
    tiny_st_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompted model (e5: "query: " / "passage: ") on a retrieval reference: monitor's reference
    embeddings are the query embeddings `evaluate` scored, and monitor (run after evaluate) reads
    them from the embedding cache."""
    import json

    from embsel_mlflow.data import demo_data_dir
    from embsel_mlflow.entrypoints.evaluate import main as evaluate_main
    from embsel_mlflow.models.cache import CachedEncoder

    calls: list[tuple[str | None, list[str], np.ndarray, int, int]] = []
    encode = CachedEncoder.encode

    def spy(self: CachedEncoder, texts: list[str], *, role: str | None = None, show_progress: bool = False):
        hits, misses = self.hits, self.misses
        out = encode(self, texts, role=role, show_progress=show_progress)
        calls.append((role, list(texts), np.array(out), self.hits - hits, self.misses - misses))
        return out

    monkeypatch.setattr(CachedEncoder, "encode", spy)
    model = ["model=e5_small", f"model.name_or_path={tiny_st_dir}", "model.name=tiny_e5"]
    store = f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"
    assert evaluate_main([*model, "data=demo_retrieval", store]) == 0
    scored = [(texts, out) for role, texts, out, _, _ in calls if role == "query"]
    assert len(scored) == 1
    evaluated = dict(zip(scored[0][0], scored[0][1], strict=True))  # query text -> evaluate's embedding

    demo = demo_data_dir() / "retrieval"
    queries = [json.loads(line)["text"] for line in (demo / "queries.jsonl").read_text().splitlines()]
    pd.DataFrame({"text": queries[:10]}).to_csv(tmp_path / "week.csv", index=False)
    calls.clear()
    _monitor([*model, "data=demo_retrieval", "current.paths=[week.csv]", *FAST], tmp_path)
    role, texts, reference, hits, misses = calls[0]  # the reference, then the window
    assert role == "query" and sorted(texts) == sorted(queries)
    np.testing.assert_array_equal(reference, np.stack([evaluated[text] for text in texts]))
    assert (hits, misses) == (len(texts), 0)  # all from evaluate's cached query embeddings
    assert calls[1][0] == "query" and calls[1][3:] == (10, 0)  # the window's queries: the same role
    window = next(r for r in _runs(tmp_path) if r.data.tags.get(monitor.ROLE_TAG) == monitor.WINDOW)
    assert window.info.status == "FINISHED"


def test_the_plan_skips_known_and_repeated_windows_and_numbers_the_new_ones() -> None:
    from embsel_mlflow.data.task_data import TableInfo
    from embsel_mlflow.monitoring.plan import Seen, plan_windows
    from embsel_mlflow.monitoring.windows import Window

    def window(name: str, text: str) -> Window:
        frame = pd.DataFrame({"text": [text]})
        return Window(name, [text], TableInfo(role=name, source=name, frame=frame), timestamp=0.0)

    a, b, a_again, c = window("a", "x"), window("b", "y"), window("a2", "x"), window("c", "z")
    plan = plan_windows([a, b, a_again, c], {b.digest: Seen("run-b", 4, "drift")})
    assert [(p.window.name, p.step, p.seen, p.duplicate) for p in plan.windows] == [
        ("a", 5, None, False),
        ("b", None, Seen("run-b", 4, "drift"), False),
        ("a2", None, None, True),
        ("c", 6, None, False),
    ]
    assert [p.window.name for p in plan.todo] == ["a", "a2", "c"]
    assert plan.windows[1].skip_line() == "window b: already monitored as step 4 (drift, run run-b); skipped"
    assert "the same content as an earlier window of this run" in plan.windows[2].skip_line()


def test_given_reference_embeddings_are_mapped_and_only_the_sampled_rows_read(tmp_path, monkeypatch) -> None:
    from embsel_mlflow.config import MonitorConfig
    from embsel_mlflow.monitoring.plan import given_reference_embeddings

    matrix = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "ref.npy", matrix)
    monkeypatch.chdir(tmp_path)
    sampled = given_reference_embeddings(
        MonitorConfig(reference_embeddings="ref.npy", max_reference_texts=2), np.array([1, 7])
    )
    assert type(sampled) is np.ndarray and sampled.flags.writeable  # a copy of two rows, not the map
    np.testing.assert_array_equal(sampled, matrix[[1, 7]])
    whole = given_reference_embeddings(
        MonitorConfig(reference_embeddings="ref.npy", max_reference_texts=None), np.arange(10)
    )
    assert type(whole) is np.ndarray
    np.testing.assert_array_equal(whole, matrix)
