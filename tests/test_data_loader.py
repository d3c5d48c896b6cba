"""Data layer: table reading (every format and reader option), task building, validation errors,
the bundled demo sets and their configs. Expected values come from the tiny files written here or
from the raw demo files parsed independently with the standard library."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from embsel_mlflow.config import DataConfig, TableConfig, TaskType
from embsel_mlflow.data import demo_data_dir, load_table
from embsel_mlflow.errors import ConfigError, DataError
from embsel_mlflow.families import (
    ClassificationExamples,
    ClusteringExamples,
    PairClassificationExamples,
    RetrievalExamples,
    STSExamples,
    load_task_data,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIGS = [
    "demo_sts",
    "demo_retrieval",
    "demo_classification",
    "demo_pair_classification",
    "demo_clustering",
]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
    return path


def data_config(root: Path, task: str, splits: dict[str, TableConfig], **kwargs) -> DataConfig:
    return DataConfig(name="t", task=TaskType(task), root=str(root), splits=splits, **kwargs)


def config_from_yaml(name: str) -> DataConfig:
    OmegaConf.register_new_resolver("embsel_demo_data", lambda: str(demo_data_dir()), replace=True)
    merged = OmegaConf.merge(
        OmegaConf.structured(DataConfig), OmegaConf.load(REPO_ROOT / "conf/data" / f"{name}.yaml")
    )
    return OmegaConf.to_object(merged)


# --- load_table: formats and reader options ----------------------------------------------------


def test_csv_with_header_maps_roles_and_keeps_ids_as_strings(tmp_path: Path) -> None:
    write(
        tmp_path / "pairs.csv",
        """
        id,first,second,score
        0024,"A cat, sleeping.",A dog.,2.500
        4983,NA,None,5
    """,
    )
    table = TableConfig(path="pairs.csv", columns={"s1": "first", "s2": "second"})
    frame, source = load_table(table, root=tmp_path, required=["s1", "s2", "score"])
    assert source == str((tmp_path / "pairs.csv").resolve())
    assert list(frame.columns) == ["id", "s1", "s2", "score"]
    assert frame["id"].tolist() == ["0024", "4983"]
    assert frame["s1"].tolist() == ["A cat, sleeping.", "NA"]  # quoted comma; "NA" is text, not missing
    assert frame["s2"].tolist() == ["A dog.", "None"]
    assert frame["score"].tolist() == ["2.500", "5"]


def test_tsv_without_header_quoting_none_and_ragged_rows(tmp_path: Path) -> None:
    # The STS-B layout: 7 fields, some rows 9, a stray double quote inside a sentence.
    rows = [
        ["main-captions", "MSRvid", "2012test", "0024", "2.500", 'He said "hi.', "Hello there."],
        ["main-news", "headlines", "2015", "0001", "4.000", "A", "B", "src one", "src two"],
    ]
    write(tmp_path / "sts.csv", "\n".join("\t".join(r) for r in rows) + "\n")
    names = ["genre", "file", "year", "id", "score", "sentence1", "sentence2", "source1", "source2"]
    table = TableConfig(
        path="sts.csv",
        format="tsv",
        header=False,
        quoting="none",
        column_names=names,
        columns={"s1": "sentence1", "s2": "sentence2"},
    )
    frame, _ = load_table(table, root=tmp_path, required=["s1", "s2", "score"])
    assert frame["s1"].tolist() == ['He said "hi.', "A"]
    assert frame["id"].tolist() == ["0024", "0001"]
    assert frame["source2"].tolist()[1] == "src two"
    assert len(frame) == 2


def test_quoting_none_keeps_stray_quotes_and_rows(tmp_path: Path) -> None:
    write(tmp_path / "x.tsv", 'a\tb\n1\t"hi, said he\n2\tok\n3\tthen "bye\n')
    frame, _ = load_table(TableConfig(path="x.tsv", quoting="none"), root=tmp_path)
    assert frame["b"].tolist() == ['"hi, said he', "ok", 'then "bye']
    # With csv quoting, a quote opened on the last row never closes: reported with the options to check.
    write(tmp_path / "y.tsv", 'a\tb\n1\tok\n2\t"hi there\n')
    with pytest.raises(DataError, match=r"cannot read .*y\.tsv as tsv: ParserError: .*EOF.*quoting"):
        load_table(TableConfig(path="y.tsv"), root=tmp_path, where="data.splits.test")


def test_utf8_bom_is_stripped_with_utf8_sig(tmp_path: Path) -> None:
    write(tmp_path / "m.txt", "Quality\t#1 String\n1\tÉté à Paris.\n", encoding="utf-8-sig")
    assert (tmp_path / "m.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    table = TableConfig(path="m.txt", format="tsv", encoding="utf-8-sig", columns={"label": "Quality"})
    frame, _ = load_table(table, root=tmp_path, required=["label", "#1 String"])
    assert list(frame.columns) == ["label", "#1 String"]
    assert frame.iloc[0].tolist() == ["1", "Été à Paris."]


def test_latin1_encoding(tmp_path: Path) -> None:
    write(tmp_path / "l.csv", "text,label\ncafé crème,a\n", encoding="latin-1")
    frame, _ = load_table(TableConfig(path="l.csv", encoding="latin-1"), root=tmp_path)
    assert frame["text"].tolist() == ["café crème"]


def test_jsonl_json_and_parquet(tmp_path: Path) -> None:
    records = [{"_id": "0024", "title": "T", "text": "first"}, {"_id": "7", "title": "", "text": "second"}]
    write(tmp_path / "c.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write(tmp_path / "c.json", json.dumps(records))
    pd.DataFrame(records).to_parquet(tmp_path / "c.parquet")
    for name in ("c.jsonl", "c.json", "c.parquet"):
        frame, _ = load_table(
            TableConfig(path=name, columns={"id": "_id"}), root=tmp_path, required=["id", "text"]
        )
        assert frame[["id", "title", "text"]].to_dict("records") == [
            {"id": r["_id"], "title": r["title"], "text": r["text"]} for r in records
        ], name


def test_reader_defaults_are_inherited_and_overridden(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "x;y\n1;2\n")
    write(tmp_path / "b.txt", "x|y\n3|4\n")
    defaults = TableConfig(format="csv", delimiter=";")
    a, _ = load_table(TableConfig(path="a.txt"), root=tmp_path, defaults=defaults)
    b, _ = load_table(TableConfig(path="b.txt", delimiter="|"), root=tmp_path, defaults=defaults)
    assert a.to_dict("records") == [{"x": "1", "y": "2"}]
    assert b.to_dict("records") == [{"x": "3", "y": "4"}]


def test_relative_root_resolves_against_cwd_and_absolute_path_ignores_root(tmp_path: Path) -> None:
    # The autouse fixture in conftest.py runs each test in tmp_path.
    assert Path.cwd().resolve() == tmp_path.resolve()
    write(tmp_path / "sub" / "d.csv", "text\nhi\n")
    _, source = load_table(TableConfig(path="d.csv"), root="sub")
    assert source == str((tmp_path / "sub" / "d.csv").resolve())
    _, source = load_table(TableConfig(path=str(tmp_path / "sub" / "d.csv")), root="/nonexistent")
    assert source == str((tmp_path / "sub" / "d.csv").resolve())


def test_a_column_named_like_a_role_is_replaced_by_the_mapped_one(tmp_path: Path) -> None:
    write(tmp_path / "t.csv", "text,clean_text,label\nraw,clean,a\n")
    frame, _ = load_table(TableConfig(path="t.csv", columns={"text": "clean_text"}), root=tmp_path)
    assert frame.to_dict("records") == [{"text": "clean", "label": "a"}]


# --- load_table: errors -------------------------------------------------------------------------


def test_missing_file_names_path_key_and_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_table(TableConfig(path="nope/test.csv"), root=tmp_path, where="data.splits.test")
    message = str(err.value)
    assert str((tmp_path / "nope" / "test.csv").resolve()) in message
    assert "data.splits.test.path" in message
    assert f"data.root={str(tmp_path)!r}" in message


def test_unreadable_files(tmp_path: Path) -> None:
    write(tmp_path / "rows.tsv", "a\tb\n1\t2\n3\t4\t5\t6\n")
    with pytest.raises(DataError, match=r"cannot read .*rows\.tsv as tsv: ParserError"):
        load_table(TableConfig(path="rows.tsv"), root=tmp_path)
    write(tmp_path / "fake.parquet", "text\nnot parquet\n")
    with pytest.raises(DataError, match=r"cannot read .*fake\.parquet as parquet"):
        load_table(TableConfig(path="fake.parquet"), root=tmp_path)
    write(tmp_path / "bad.jsonl", '{"_id": "1", "text": "ok"}\nthis is not json\n')
    with pytest.raises(DataError, match=r"cannot read .*bad\.jsonl as jsonl"):
        load_table(TableConfig(path="bad.jsonl"), root=tmp_path)
    (tmp_path / "latin.csv").write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv is not valid utf-8: byte 0xe9 at row 1 .*latin-1"):
        load_table(TableConfig(path="latin.csv"), root=tmp_path)
    write(tmp_path / "data.dat", "text\nx\n")
    with pytest.raises(DataError, match=r"cannot tell the format of .*data\.dat.*data\.splits\.test\.format"):
        load_table(TableConfig(path="data.dat"), root=tmp_path, where="data.splits.test")
    with pytest.raises(ConfigError, match=r"data\.splits\.test\.format: unknown format 'xlsx'"):
        load_table(TableConfig(path="data.dat", format="xlsx"), root=tmp_path, where="data.splits.test")


def test_missing_columns_name_column_file_available_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "sentence1,sentence2,gold\na,b,1\n")
    with pytest.raises(DataError) as err:
        load_table(TableConfig(path="p.csv"), root=tmp_path, required=["score"], where="data.splits.test")
    message = str(err.value)
    for part in [
        "'score'",
        str(path.resolve()),
        "['sentence1', 'sentence2', 'gold']",
        "data.splits.test.columns.score",
    ]:
        assert part in message
    with pytest.raises(DataError) as err:
        load_table(
            TableConfig(path="p.csv", columns={"s1": "sent1"}), root=tmp_path, where="data.splits.test"
        )
    assert "'sent1'" in str(err.value)
    assert "data.splits.test.columns.s1" in str(err.value)


def test_bom_in_first_column_name_gets_a_hint(tmp_path: Path) -> None:
    # A UTF-8 BOM read as latin-1 survives as three characters in the first column name.
    (tmp_path / "b.csv").write_bytes("\ufefftext,label\nx,y\n".encode())
    with pytest.raises(
        DataError, match=r"available columns: \['ï»¿text', 'label'\] \(the first name .*utf-8-sig"
    ):
        load_table(TableConfig(path="b.csv", encoding="latin-1"), root=tmp_path, required=["text"])
    # The check that actually matters: the real BOM case reads cleanly with utf-8-sig.
    frame, _ = load_table(TableConfig(path="b.csv", encoding="utf-8-sig"), root=tmp_path, required=["text"])
    assert frame["text"].tolist() == ["x"]


def test_config_errors(tmp_path: Path) -> None:
    write(tmp_path / "n.tsv", "a\tb\n")
    with pytest.raises(ConfigError, match=r"data\.splits\.test\.column_names"):
        load_table(TableConfig(path="n.tsv", header=False), root=tmp_path, where="data.splits.test")
    with pytest.raises(ConfigError, match=r"quoting: unknown value 'off'"):
        load_table(TableConfig(path="n.tsv", quoting="off"), root=tmp_path)
    with pytest.raises(ConfigError, match="either path or hub"):
        load_table(TableConfig(path="n.tsv", hub="x/y"), root=tmp_path)
    with pytest.raises(ConfigError, match="no data source"):
        load_table(TableConfig(), root=tmp_path)


def test_hub_dataset_offline_fails_with_one_line_and_the_fix(tmp_path: Path) -> None:
    # The real load_dataset path, in a subprocess so that offline mode is set before import.
    code = textwrap.dedent("""
        from embsel_mlflow.config import TableConfig
        from embsel_mlflow.data import load_table
        from embsel_mlflow.errors import DataError
        try:
            table = TableConfig(hub="embsel-tests/sts-example", split="test")
            load_table(table, root=".", where="data.splits.test")
        except DataError as exc:
            print("DataError:", exc)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("DataError:")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert "could not load hub dataset 'embsel-tests/sts-example'" in lines[0]
    assert "data.splits.test.path" in lines[0]


# --- load_task_data -----------------------------------------------------------------------------


def test_sts_scores_limit_and_tables(tmp_path: Path) -> None:
    write(tmp_path / "s.csv", "a,b,score\nx1,y1,0.5\nx2,y2,4\nx3,y3,5.0\n")
    cfg = data_config(tmp_path, "sts", {"test": TableConfig(path="s.csv", columns={"s1": "a", "s2": "b"})})
    data = load_task_data(cfg)
    assert isinstance(data.examples, STSExamples)
    assert data.examples.s1 == ["x1", "x2", "x3"]
    assert data.examples.s2 == ["y1", "y2", "y3"]
    assert data.examples.scores.dtype == np.float64
    np.testing.assert_array_equal(data.examples.scores, [0.5, 4.0, 5.0])
    assert [(t.role, t.source, len(t.frame)) for t in data.tables] == [
        ("test", str((tmp_path / "s.csv").resolve()), 3)
    ]
    cfg.limit = 2
    limited = load_task_data(cfg)
    assert limited.examples.s1 == ["x1", "x2"]
    assert len(limited.tables[0].frame) == 2


def test_sts_non_numeric_score(tmp_path: Path) -> None:
    write(tmp_path / "s.csv", "a,b,gold\nx,y,1\nx,y,high\nx,y,n/a\n")
    cfg = data_config(
        tmp_path, "sts", {"test": TableConfig(path="s.csv", columns={"s1": "a", "s2": "b", "score": "gold"})}
    )
    with pytest.raises(DataError) as err:
        load_task_data(cfg)
    message = str(err.value)
    for part in [str((tmp_path / "s.csv").resolve()), "'gold'", "row 2", "'high'", "2 such row"]:
        assert part in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["1", "0", "1"], [1, 0, 1]), (["True", "false", "TRUE"], [1, 0, 1]), (["1.0", "0.0", "0"], [1, 0, 0])],
)
def test_pair_labels_accepted(tmp_path: Path, values: list[str], expected: list[int]) -> None:
    write(tmp_path / "p.csv", "s1,s2,label\n" + "".join(f"a,b,{v}\n" for v in values))
    data = load_task_data(data_config(tmp_path, "pair_classification", {"test": TableConfig(path="p.csv")}))
    assert isinstance(data.examples, PairClassificationExamples)
    assert data.examples.labels.dtype == np.int64
    assert data.examples.labels.tolist() == expected


def test_pair_labels_bool_and_int_from_parquet(tmp_path: Path) -> None:
    pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "label": [True, False]}).to_parquet(
        tmp_path / "b.parquet"
    )
    pd.DataFrame({"s1": ["a", "b"], "s2": ["c", "d"], "label": [0, 1]}).to_parquet(tmp_path / "i.parquet")
    for name, expected in [("b.parquet", [1, 0]), ("i.parquet", [0, 1])]:
        data = load_task_data(data_config(tmp_path, "pair_classification", {"test": TableConfig(path=name)}))
        assert data.examples.labels.tolist() == expected


@pytest.mark.parametrize("bad", ["2", "yes", "-1", ""])
def test_pair_labels_rejected(tmp_path: Path, bad: str) -> None:
    write(tmp_path / "p.csv", f"s1,s2,Quality\na,b,1\na,b,{bad}\n")
    cfg = data_config(
        tmp_path, "pair_classification", {"test": TableConfig(path="p.csv", columns={"label": "Quality"})}
    )
    message = "1 row.s. have no 'Quality' value, first at row 2.*data.on_missing=skip" if not bad else ""
    with pytest.raises(DataError, match=message or rf"p\.csv: column 'Quality' row 2 has '{bad}'"):
        load_task_data(cfg)


def test_classification_labels_are_strings_and_train_split_is_required(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "text,label\na,1\nb,2\n")
    pd.DataFrame({"text": ["c", "d", "e"], "label": [2, 1, 2]}).to_parquet(tmp_path / "test.parquet")
    splits = {"train": TableConfig(path="train.csv"), "test": TableConfig(path="test.parquet")}
    data = load_task_data(data_config(tmp_path, "classification", splits, limit=2))
    assert isinstance(data.examples, ClassificationExamples)
    assert data.examples.train_labels == ["1", "2"]
    assert data.examples.test_labels == ["2", "1"]
    assert data.examples.test_texts == ["c", "d"]
    assert [t.role for t in data.tables] == ["train", "test"]
    with pytest.raises(ConfigError, match=r"data\.splits\.fit.*configured splits: \['test', 'train'\]"):
        load_task_data(data_config(tmp_path, "classification", splits, train_split="fit"))
    with pytest.raises(ConfigError, match=r"split 'dev' is not configured"):
        load_task_data(data_config(tmp_path, "classification", splits), split="dev")


def test_empty_and_missing_text(tmp_path: Path) -> None:
    write(tmp_path / "c.csv", "text,label\nok,a\n,a\nfine,b\n  ,b\n")
    with pytest.raises(DataError) as err:
        load_task_data(data_config(tmp_path, "clustering", {"test": TableConfig(path="c.csv")}))
    for part in [
        str((tmp_path / "c.csv").resolve()),
        "column 'text'",
        "2 empty or missing",
        "first at row 2",
    ]:
        assert part in str(err.value)
    write(tmp_path / "q.jsonl", '{"id": "1", "text": "ok"}\n{"id": "2", "text": null}\n{"id": "3"}\n')
    with pytest.raises(
        DataError, match=r"q\.jsonl: column 'text' has 2 empty or missing text value\(s\), first at row 2 "
    ):
        load_task_data(
            data_config(
                tmp_path, "clustering", {"test": TableConfig(path="q.jsonl", columns={"label": "id"})}
            )
        )


def test_clustering(tmp_path: Path) -> None:
    write(tmp_path / "c.csv", "sentence,topic\nx,1\ny,2\n")
    cfg = data_config(
        tmp_path,
        "clustering",
        {"test": TableConfig(path="c.csv", columns={"text": "sentence", "label": "topic"})},
    )
    data = load_task_data(cfg)
    assert isinstance(data.examples, ClusteringExamples)
    assert (data.examples.texts, data.examples.labels) == (["x", "y"], ["1", "2"])


def _beir(tmp_path: Path, qrels: str) -> DataConfig:
    write(
        tmp_path / "corpus.jsonl",
        """
        {"_id": "4983", "title": "Title A", "text": "Body A."}
        {"_id": "0024", "title": "", "text": "Body B."}
        {"_id": "7", "title": "Only title", "text": ""}
    """,
    )
    write(
        tmp_path / "queries.jsonl",
        """
        {"_id": "1", "text": "first query", "metadata": {}}
        {"_id": "2", "text": "train-only query", "metadata": {"4983": [{"label": "x"}]}}
        {"_id": "3", "text": "third query", "metadata": {}}
    """,
    )
    write(tmp_path / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n" + qrels)
    qrels_table = TableConfig(path="qrels/test.tsv", columns={"query_id": "query-id", "doc_id": "corpus-id"})
    return data_config(
        tmp_path,
        "retrieval",
        {"test": qrels_table},
        corpus=TableConfig(path="corpus.jsonl", columns={"id": "_id"}),
        queries=TableConfig(path="queries.jsonl", columns={"id": "_id"}),
    )


def test_retrieval_beir_layout(tmp_path: Path) -> None:
    cfg = _beir(tmp_path, "3\t0024\t1\n1\t4983\t1\n1\t7\t2\n")
    data = load_task_data(cfg)
    assert isinstance(data.examples, RetrievalExamples)
    assert data.examples.corpus == {"4983": "Title A Body A.", "0024": "Body B.", "7": "Only title"}
    assert data.examples.queries == {"3": "third query", "1": "first query"}  # query 2 has no qrels
    assert data.examples.qrels == {"3": {"0024": 1}, "1": {"4983": 1, "7": 2}}
    assert [t.role for t in data.tables] == ["corpus", "queries", "qrels/test"]
    cfg.limit = 1
    limited = load_task_data(cfg)
    assert limited.examples.queries == {"3": "third query"}
    assert limited.examples.qrels == {"3": {"0024": 1}}
    assert len(limited.examples.corpus) == 3
    assert limited.tables[-1].frame["query_id"].tolist() == ["3"]


def test_retrieval_unknown_ids(tmp_path: Path) -> None:
    cfg = _beir(tmp_path, "1\t4983\t1\n9\t4983\t1\n8\t7\t1\n9\t7\t1\n")
    with pytest.raises(DataError) as err:
        load_task_data(cfg)
    for part in [
        str((tmp_path / "qrels" / "test.tsv").resolve()),
        "'query-id'",
        "2 id(s)",
        "e.g. '9'",
        "queries.jsonl",
    ]:
        assert part in str(err.value)
    cfg = _beir(tmp_path, "1\t4983\t1\n1\t24\t1\n")  # "24" is not "0024": ids are compared as strings
    with pytest.raises(
        DataError, match=r"'corpus-id' has 1 id\(s\) not found in the documents table .*e\.g\. '24'"
    ):
        load_task_data(cfg)


def test_retrieval_duplicate_doc_ids(tmp_path: Path) -> None:
    cfg = _beir(tmp_path, "1\t4983\t1\n")
    with open(tmp_path / "corpus.jsonl", "a") as f:
        f.write('{"_id": "0024", "title": "again", "text": "dup"}\n')
    with pytest.raises(DataError, match=r"column '_id' has 1 duplicate id\(s\), e\.g\. '0024'"):
        load_task_data(cfg)


def test_retrieval_needs_corpus_and_queries(tmp_path: Path) -> None:
    cfg = _beir(tmp_path, "1\t4983\t1\n")
    cfg.corpus = None
    with pytest.raises(ConfigError, match=r"data\.corpus"):
        load_task_data(cfg)


# --- bundled demo sets and their configs ---------------------------------------------------------


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", DEMO_CONFIGS)
def test_demo_config_validates_and_loads(name: str) -> None:
    cfg = config_from_yaml(name)
    assert isinstance(cfg, DataConfig)
    assert Path(cfg.root) == demo_data_dir()
    data = load_task_data(cfg)
    assert data.task == cfg.task
    assert data.split == "test"
    for table in data.tables:
        assert Path(table.source).is_relative_to(demo_data_dir())


@pytest.mark.parametrize("name", ["stsb", "mrpc", "banking77", "scifact"])
def test_shared_configs_validate_without_the_data(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBSEL_SHARED_DATA", raising=False)
    cfg = config_from_yaml(name)
    assert cfg.root == "../shared/data"  # relative to where embsel runs (the repository root)
    assert cfg.name == name
    assert "test" in cfg.splits
    monkeypatch.setenv("EMBSEL_SHARED_DATA", "/data/mine")
    assert config_from_yaml(name).root == "/data/mine"


def test_demo_sets_match_their_raw_files() -> None:
    root = demo_data_dir()
    sts = load_task_data(config_from_yaml("demo_sts")).examples
    rows = _csv_rows(root / "sts" / "test.csv")
    assert sts.s1 == [r["sentence1"] for r in rows]
    assert sts.s2 == [r["sentence2"] for r in rows]
    assert sts.scores.tolist() == [float(r["score"]) for r in rows]
    assert sts.scores.min() >= 0 and sts.scores.max() <= 5

    pairs = load_task_data(config_from_yaml("demo_pair_classification")).examples
    rows = _csv_rows(root / "pair_classification" / "test.csv")
    assert pairs.labels.tolist() == [int(r["label"]) for r in rows]
    assert 0 < pairs.labels.mean() < 1

    cls = load_task_data(config_from_yaml("demo_classification")).examples
    train, test = (
        _csv_rows(root / "classification" / "train.csv"),
        _csv_rows(root / "classification" / "test.csv"),
    )
    assert cls.train_labels == [r["label"] for r in train]
    assert cls.test_texts == [r["text"] for r in test]
    assert 4 <= len(set(cls.test_labels)) <= 6
    assert set(cls.test_labels) == set(cls.train_labels)

    clusters = load_task_data(config_from_yaml("demo_clustering")).examples
    assert clusters.labels == [r["label"] for r in _csv_rows(root / "clustering" / "test.csv")]

    ret = load_task_data(config_from_yaml("demo_retrieval")).examples
    corpus = _jsonl(root / "retrieval" / "corpus.jsonl")
    assert ret.corpus == {d["_id"]: f"{d['title']} {d['text']}".strip() for d in corpus}
    with open(root / "retrieval" / "qrels" / "test.tsv", newline="") as f:
        qrels_rows = list(csv.DictReader(f, delimiter="\t"))
    assert sum(len(docs) for docs in ret.qrels.values()) == len(qrels_rows)
    assert set(ret.queries) == {r["query-id"] for r in qrels_rows}


def test_demo_sets_stay_small() -> None:
    files = [p for p in demo_data_dir().rglob("*") if p.is_file() and p.suffix in {".csv", ".tsv", ".jsonl"}]
    rows = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)
    assert 150 <= rows <= 600


# --- several files, line formats, escapes --------------------------------------------------------


def test_a_list_or_glob_of_files_is_one_table_and_errors_name_the_file_and_its_row(tmp_path: Path) -> None:
    write(tmp_path / "p" / "a.csv", "sentence1,sentence2,score\nx,y,1\n")
    (tmp_path / "p" / "b.csv").write_bytes(b"sentence1,sentence2,score\r\nu,v,2\r\nw,z,3\r\n")  # CRLF
    for path in (["p/a.csv", "p/b.csv"], "p/*.csv"):
        frame, source = load_table(TableConfig(path=path), root=tmp_path)
        assert frame["score"].tolist() == ["1", "2", "3"] and frame["sentence2"].tolist() == ["y", "v", "z"]
        assert source == f"{(tmp_path / 'p' / 'a.csv').resolve()}, {(tmp_path / 'p' / 'b.csv').resolve()}"
    write(tmp_path / "p" / "c.csv", "sentence1,sentence2,score\nx,y,1\nq,r,lots\n")
    splits = {
        "test": TableConfig(path=["p/a.csv", "p/c.csv"], columns={"s1": "sentence1", "s2": "sentence2"})
    }
    with pytest.raises(DataError, match=r"c\.csv: column 'score' row 2 has 'lots'"):
        load_task_data(data_config(tmp_path, "sts", splits))


def test_regex_reader_reads_label_lines_in_latin1(tmp_path: Path) -> None:
    (tmp_path / "q.label").write_bytes(
        "DESC:manner How is café made ?\r\n\nHUM:ind Who is Brontë ?\n".encode("latin-1")
    )
    reader = TableConfig(
        format="regex", encoding="latin-1", pattern=r"(?P<label>[A-Z]+):(?P<fine>\S+) (?P<text>.+)"
    )
    frame, _ = load_table(
        TableConfig(path="q.label"), root=tmp_path, defaults=reader, required=["text", "label"]
    )
    assert frame.to_dict("list") == {
        "label": ["DESC", "HUM"],
        "fine": ["manner", "ind"],
        "text": ["How is café made ?", "Who is Brontë ?"],
    }
    with pytest.raises(
        DataError, match=r"q\.label is not valid utf-8: byte 0xe9 at row 1; .*encoding: latin-1"
    ):
        load_table(TableConfig(path="q.label", format="regex", pattern=reader.pattern), root=tmp_path)


def test_jsonl_encoding_error_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_bytes(b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"c\.jsonl is not valid utf-8: byte 0xe9 at row 2; .*latin-1"):
        load_table(TableConfig(path="c.jsonl"), root=tmp_path, where="data.corpus")


@pytest.mark.parametrize("typed", ["\\t", "\t", "tab"])
def test_tab_delimiter_as_typed_on_a_command_line(tmp_path: Path, typed: str) -> None:
    write(tmp_path / "t.txt", "a\tb\n1\t2\n")
    frame, _ = load_table(TableConfig(path="t.txt", format="csv", delimiter=typed), root=tmp_path)
    assert frame.to_dict("list") == {"a": ["1"], "b": ["2"]}


def test_invisible_only_texts_are_empty(tmp_path: Path) -> None:
    write(tmp_path / "c.csv", "text,label\nok,a\n\u200b\u200d\u2060,b\nfine,b\n")
    with pytest.raises(DataError, match=r"1 empty or missing text value\(s\), first at row 2"):
        load_task_data(data_config(tmp_path, "clustering", {"test": TableConfig(path="c.csv")}))
