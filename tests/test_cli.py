"""The `embsel` CLI end to end, in subprocesses, against a real sqlite store in a tmp dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from embsel_mlflow.data import demo_data_dir


def _runs(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments) if experiments else []


def _tiny(model_dir: Path) -> list[str]:
    return ["model=transformers_mean", f"model.name_or_path={model_dir}", "model.name=tiny"]


def test_help_is_fast_because_nothing_heavy_is_imported() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from embsel_mlflow import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['--help'])\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'mlflow', 'datasets', 'hydra'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("as_command", [True, False])
def test_only_the_command_process_collects_garbage_less_often(as_command: bool) -> None:
    """`embsel` (argv None) sets generation 0's threshold; a library call of cli.main keeps Python's."""
    from embsel_mlflow.cli import GC_GENERATION0_THRESHOLD

    code = (
        "import atexit, contextlib, gc, io, sys\n"
        "default = gc.get_threshold()[0]\n"
        "atexit.register(lambda: print('threshold', default, gc.get_threshold()[0], file=sys.stderr))\n"
        "sys.argv = ['embsel', 'evaluate', '--cfg', 'job']\n"
        "from embsel_mlflow import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    cli.main({'' if as_command else 'sys.argv[1:]'})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    default, after = map(int, result.stderr.split("threshold ")[-1].split())
    assert (
        after == (GC_GENERATION0_THRESHOLD if as_command else default) and default < GC_GENERATION0_THRESHOLD
    )


def test_help_and_unknown_command(run_cli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "evaluate" in result.stdout
    result = run_cli("nope")
    assert result.returncode == 2 and "unknown command 'nope'" in result.stderr


def test_cfg_job_prints_the_composed_config_without_a_run(run_cli, tmp_path: Path) -> None:
    result = run_cli("evaluate", "--cfg", "job", "data=stsb")
    assert result.returncode == 0, result.stderr
    assert (
        "name: stsb" in result.stdout
        and "name_or_path: sentence-transformers/all-MiniLM-L6-v2" in result.stdout
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_command_help_is_hydras(run_cli) -> None:
    result = run_cli("evaluate", "--help")
    assert result.returncode == 0 and "model: " in result.stdout


def test_default_run_is_offline_minilm_on_the_demo_and_finishes(run_cli, tmp_path: Path) -> None:
    result = run_cli("evaluate")
    assert result.returncode == 0, result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["embsel.model_origin"] == "offline_package" and tags["embsel.model_sha256"].startswith(
        "53aa5117"
    )
    assert (tags["embsel.task"], tags["embsel.dataset"], tags["embsel.model"]) == (
        "sts",
        "demo_sts",
        "minilm",
    )
    assert "versions.torch" in tags and "hardware.cpu_count" in tags
    assert params["model.name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["data.task"] == "sts" and params["evaluation.seed"] == "42"
    assert metrics["main_score"] == metrics["test/cosine_spearman"] > 0.7
    assert metrics["embedding_dim"] == 384 and metrics["num_parameters"] > 2e7
    assert metrics["texts_per_second"] > 0
    artifacts = {
        a.path for a in MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").list_artifacts(run.info.run_id)
    }
    assert {"config.yaml", "overrides.yaml", "results.json", "per_item", "plots"} <= artifacts
    inputs = run.inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["demo_sts/test"]
    assert inputs[0].dataset.digest
    assert f"cosine_spearman = {metrics['main_score']:.5f}" in result.stdout


@pytest.mark.slow  # keeps the default suite under 10 minutes; CI runs -m slow too
def test_multirun_gives_one_finished_child_run_per_job_for_every_task(
    run_cli, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    datasets = [
        "demo_sts",
        "demo_retrieval",
        "demo_classification",
        "demo_pair_classification",
        "demo_clustering",
    ]
    result = run_cli("evaluate", "-m", f"data={','.join(datasets)}", *_tiny(tiny_bert_dir))
    assert result.returncode == 0, result.stderr
    all_runs = _runs(tmp_path)
    runs = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert sorted(r.data.tags["embsel.dataset"] for r in runs) == sorted(datasets)
    assert {r.info.status for r in runs} == {"FINISHED"}
    main = {r.data.tags["embsel.task"]: r.data.metrics for r in runs}
    assert main["retrieval"]["main_score"] == main["retrieval"]["test/ndcg_at_10"]
    assert main["classification"]["main_score"] == main["classification"]["test/accuracy"]
    assert main["pair_classification"]["main_score"] == main["pair_classification"]["test/cosine_ap"]
    assert main["clustering"]["main_score"] == main["clustering"]["test/v_measure"]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _bad_beir(root: Path) -> None:
    src = demo_data_dir() / "retrieval"
    for name in ("corpus.jsonl", "queries.jsonl"):
        _write(root / "beir" / "retrieval" / name, (src / name).read_text(encoding="utf-8"))
    qrels = (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    first_query = qrels[1].split("\t")[0]
    _write(
        root / "beir" / "retrieval" / "qrels" / "test.tsv",
        "\n".join([*qrels, f"{first_query}\tno-such-doc\t1"]) + "\n",
    )


BAD_INPUT = {
    "missing file": ([], ["data.splits.test.path=nope.csv"], "nope.csv"),
    "missing column": ([], ["data.splits.test.columns.s1=sentence_one"], "sentence_one"),
    "empty text": (
        [("sts/bad.csv", "sentence1,sentence2,score\nA cat.,A dog.,1.0\n,Nothing here.,2.0\n")],
        ["data.root=.", "data.splits.test.path=sts/bad.csv"],
        "sentence1",
    ),
    "non-numeric score": (
        [("sts/bad.csv", "sentence1,sentence2,score\nA cat.,A dog.,1.0\nA cow.,A bull.,high\n")],
        ["data.root=.", "data.splits.test.path=sts/bad.csv"],
        "high",
    ),
    "qrels with unknown ids": ("beir", ["data=demo_retrieval", "data.root=beir"], "no-such-doc"),
    "unknown model offline": (
        [],
        ["model=transformers_mean", "model.name_or_path=nobody/no-such-model"],
        "nobody/no-such-model",
    ),
    "unknown config key": ([], ["model.nmae=x"], "nmae"),
}


# the loader's unit tests check these messages in-process; the process-level copies run in -m slow
SLOW_BAD_INPUT = {"empty text", "non-numeric score", "qrels with unknown ids", "unknown model offline"}


@pytest.mark.parametrize(
    "files,overrides,needle",
    [
        pytest.param(*case, id=name, marks=[pytest.mark.slow] if name in SLOW_BAD_INPUT else [])
        for name, case in BAD_INPUT.items()
    ],
)
def test_bad_input_gives_one_line_error_nonzero_exit_and_a_failed_run(
    run_cli, tmp_path: Path, files, overrides: list[str], needle: str
) -> None:
    if files == "beir":
        _bad_beir(tmp_path)
        overrides = [o if o != "data.root=beir" else f"data.root={tmp_path / 'beir'}" for o in overrides]
    else:
        for rel, text in files:
            _write(tmp_path / rel, text)
    result = run_cli("evaluate", *overrides)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == errors[0].removeprefix("error: ")


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_results_json_matches_logged_metrics(run_cli, tmp_path: Path, tiny_bert_dir: Path) -> None:
    result = run_cli("evaluate", "data=demo_retrieval", *_tiny(tiny_bert_dir), "evaluation.k_values=[1, 5]")
    assert result.returncode == 0, result.stderr
    (run,) = _runs(tmp_path)
    local = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").download_artifacts(
        run.info.run_id, "results.json"
    )
    results = json.loads(Path(local).read_text())
    assert {f"test/{k}": v for k, v in results["scores"].items()}.items() <= run.data.metrics.items()
    # the main score (nDCG@10) is always computed; other cut-offs follow k_values
    assert {"test/ndcg_at_1", "test/ndcg_at_5", "test/ndcg_at_10"} <= run.data.metrics.keys()
    assert "test/ndcg_at_3" not in run.data.metrics


def test_secrets_never_reach_the_store(run_cli, tmp_path: Path, tiny_st_dir: Path) -> None:
    secret = "hf_DoNotLogThisToken123"
    overrides = ["model.name_or_path=" + str(tiny_st_dir), "model.name=tiny", f"model.token={secret}"]
    result = run_cli("evaluate", *overrides, "+tracking.tags.owner=me")
    assert result.returncode == 0, result.stderr
    (run,) = _runs(tmp_path)
    assert run.data.params["model.token"] == "***"
    stored = [tmp_path / "mlflow.db", *(p for p in (tmp_path / "mlruns").rglob("*") if p.is_file())]
    assert not [p for p in stored if secret.encode() in p.read_bytes()]
