"""Bad data and model inputs through the real CLI (in-process) against a real sqlite store.

Every case: exit code 2, exactly one ``error:`` line, no traceback, one new FAILED run whose
``error`` tag is that line, and nothing else in the store changed (a FINISHED run is there
before each case). Questionable data finishes, with warnings logged on the run with counts.
The third-party formats (SICK-R split over three files, one with CRLF; TREC in Latin-1 as
``COARSE:fine text`` lines) are built here and read through conf/data/sick_r.yaml and trec.yaml.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.config import EvaluationConfig
from tests.cli_harness import Store, assert_one_line_error, invoke

ZWSP, BOM = "\u200b", "\ufeff"


def _seed(store: Store) -> None:
    """A FINISHED run with a param, a metric, a tag and an artifact: a bad case must not touch it."""
    from embsel_mlflow.tracking.experiment_ui import get_or_create_experiment
    from embsel_mlflow.tracking.store import open_store

    client = open_store(store.uri)
    experiment = get_or_create_experiment(client, "embsel", store.uri)
    run_id = client.create_run(experiment, run_name="earlier good run").info.run_id
    client.log_param(run_id, "data.name", "earlier")
    client.log_metric(run_id, "main_score", 0.75)
    client.set_tag(run_id, "embsel.model", "earlier")
    client.log_text(run_id, "kept", "kept.txt")
    client.set_terminated(run_id, "FINISHED")


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded store, created (and migrated: seconds) once per module and copied per case."""
    folder = tmp_path_factory.mktemp("seeded_store")
    _seed(Store(folder))
    return folder


def _seeded_store(template: Path, folder: Path) -> Store:
    """A copy of the seeded store in ``folder``, its artifact locations moved along with it."""
    import sqlite3

    shutil.copy(template / "mlflow.db", folder / "mlflow.db")
    shutil.copytree(template / "mlruns", folder / "mlruns")
    old, new = (template / "mlruns").as_uri(), (folder / "mlruns").as_uri()
    with contextlib.closing(sqlite3.connect(folder / "mlflow.db")) as con, con:
        con.execute("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)", (old, new))
        con.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    return Store(folder)


def _write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline=newline) as handle:
        handle.write(text)
    return path


def _sts(rows: list[tuple[str, str, str]], header: str = "sentence1,sentence2,score") -> str:
    return header + "\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)


GOOD_STS = [("a cat", "a dog", "1"), ("the sun", "a star", "3"), ("red", "blue", "2")]
CORPUS = '{"_id": "d1", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n{"_id": "d3", "text": "gamma"}\n'
QUERIES = '{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n'


def _retrieval(root: Path, qrels: str) -> list[str]:
    _write(root / "corpus.jsonl", CORPUS)
    _write(root / "queries.jsonl", QUERIES)
    _write(root / "qrels.tsv", "query-id\tcorpus-id\tscore\n" + qrels)
    return [
        "data=demo_retrieval",
        f"data.root={root}",
        "data.corpus.path=corpus.jsonl",
        "data.queries.path=queries.jsonl",
        "data.splits.test.path=qrels.tsv",
    ]


def _classification(root: Path, train: str, test: str) -> list[str]:
    _write(root / "train.csv", "text,label\n" + train)
    _write(root / "test.csv", "text,label\n" + test)
    return [
        "data=demo_classification",
        f"data.root={root}",
        "data.splits.train.path=train.csv",
        "data.splits.test.path=test.csv",
        "evaluation.n_experiments=1",
    ]


def _sts_file(root: Path, text: str, name: str = "pairs.csv", **kw) -> list[str]:
    _write(root / name, text, **kw)
    return [f"data.root={root}", f"data.splits.test.path={name}"]


@dataclass
class Case:
    setup: Callable[[Path, Path], list[str]]  # (data dir, tiny model dir) -> overrides
    needle: str  # must appear in the one error line


def _loop(root: Path, name: str) -> Path:
    a, b = root / f"{name}_a", root / f"{name}_b"
    root.mkdir(parents=True, exist_ok=True)
    os.symlink(b, a)
    os.symlink(a, b)
    return a


def _model_copy(model: Path, root: Path, weights: Callable[[bytes], bytes]) -> list[str]:
    copy = root / "model"
    shutil.copytree(model, copy)
    target = copy / "model.safetensors"
    target.write_bytes(weights(target.read_bytes()))
    return [f"model.name_or_path={copy}"]


CASES: dict[str, Case] = {
    # --- section 4: never a wrong number -------------------------------------------------------
    "sts_identical_pairs": Case(
        lambda d, m: _sts_file(d, _sts([("same", "same", "1"), ("other", "other", "4")])),
        "every pair holds the same text twice",
    ),
    "sts_constant_predictions": Case(
        # the tiny model's vocabulary knows none of these symbols: every text is one [UNK]
        lambda d, m: _sts_file(d, _sts([("☃", "★", "1"), ("☄", "☆", "4"), ("♠", "♣", "2")])),
        "the same cosine similarity",
    ),
    "qrels_all_zero": Case(lambda d, m: _retrieval(d, "q1\td1\t0\nq2\td2\t0\n"), "0 or negative"),
    "qrels_all_negative": Case(lambda d, m: _retrieval(d, "q1\td1\t-1\nq2\td2\t-2\n"), "0 or negative"),
    "qrels_conflicting_duplicates": Case(
        lambda d, m: _retrieval(d, "q1\td1\t1\nq2\td2\t1\nq1\td1\t0\n"),
        "rows 1 and 3 judge query 'q1' / document 'd1' with different scores (1 and 0)",
    ),
    "classification_no_test_label_in_train": Case(
        lambda d, m: _classification(d, "a,x\nb,y\nc,x\nd,y\n", "e,z\nf,w\n"), "no test label occurs"
    ),
    "classification_labels_differ_in_case": Case(
        lambda d, m: _classification(d, "a,pos\nb,neg\nc,pos\nd,neg\n", "e,Pos\nf,neg\n"),
        "test 'Pos' vs train 'pos'",
    ),
    "text_only_zero_width_spaces": Case(
        lambda d, m: _sts_file(d, _sts([*GOOD_STS, (ZWSP * 3, "b", "2")])), "first at row 4"
    ),
    "text_only_a_bom": Case(
        lambda d, m: _sts_file(d, _sts([*GOOD_STS[:1], ("x", BOM + " " + ZWSP, "2"), *GOOD_STS[1:]])),
        "column 'sentence2' has 1 empty or missing text value(s), first at row 2",
    ),
    # --- section 5: one line, never a traceback --------------------------------------------------
    "batch_size_zero": Case(lambda d, m: ["model.batch_size=0"], "model.batch_size must be >= 1"),
    "batch_size_negative": Case(lambda d, m: ["model.batch_size=-4"], "model.batch_size must be >= 1"),
    "max_seq_length_zero": Case(lambda d, m: ["model.max_seq_length=0"], "model.max_seq_length must be >= 1"),
    "max_seq_length_negative": Case(
        lambda d, m: ["model.max_seq_length=-1"], "model.max_seq_length must be >= 1"
    ),
    "max_seq_length_above_positions": Case(
        lambda d, m: ["model.max_seq_length=100000"], "exceeds the 128 positions"
    ),
    "empty_csv_file": Case(lambda d, m: _sts_file(d, ""), "is empty (0 bytes)"),
    "empty_jsonl_corpus": Case(
        lambda d, m: [*_retrieval(d, "q1\td1\t1\n"), f"data.corpus.path={_write(d / 'empty.jsonl', '')}"],
        "is empty (0 bytes)",
    ),
    "data_symlink_loop": Case(lambda d, m: [f"data.splits.test.path={_loop(d, 'data')}"], "symlink loop"),
    "model_symlink_loop": Case(lambda d, m: [f"model.name_or_path={_loop(d, 'model')}"], "symlink loop"),
    "truncated_safetensors": Case(
        lambda d, m: _model_copy(m, d, lambda data: data[: len(data) // 2]), "corrupt or truncated"
    ),
    "garbage_safetensors": Case(
        lambda d, m: _model_copy(m, d, lambda data: os.urandom(4096)), "corrupt or truncated"
    ),
    "data_path_is_a_directory": Case(
        lambda d, m: [*_sts_file(d, _sts(GOOD_STS))[:1], f"data.splits.test.path={d}"],
        "is a directory, not a file",
    ),
    # --- section 6: the data layer -----------------------------------------------------------------
    "latin1_read_as_utf8": Case(
        lambda d, m: _sts_file(d, _sts([*GOOD_STS, ("café", "thé", "2")]), encoding="latin-1"),
        "byte 0xe9 at row 4 (line 5 of the file)",
    ),
    "unknown_encoding": Case(
        lambda d, m: [*_sts_file(d, _sts(GOOD_STS)), "data.reader.encoding=klingon"], "unknown encoding"
    ),
    "regex_line_does_not_match": Case(
        lambda d, m: [
            *_sts_file(d, "a|b|1\nc|d|2\nno separators here\n", name="pairs.txt"),
            "data.reader.format=regex",
            "data.reader.pattern='(?P<sentence1>[^|]+)[|](?P<sentence2>[^|]+)[|](?P<score>.+)'",
        ],
        "line 3 of",
    ),
    "regex_without_pattern": Case(
        lambda d, m: [*_sts_file(d, "a|b|1\n", name="pairs.txt"), "data.reader.format=regex"],
        "needs a pattern with named groups",
    ),
    "regex_invalid": Case(
        lambda d, m: [
            *_sts_file(d, "a|b|1\n", name="pairs.txt"),
            "data.reader.format=regex",
            "data.reader.pattern='(?P<sentence1>[a-'",
        ],
        "invalid regular expression",
    ),
    "regex_unnamed_groups": Case(
        lambda d, m: [
            *_sts_file(d, "a|b|1\n", name="pairs.txt"),
            "data.reader.format=regex",
            "data.reader.pattern='(?P<sentence1>.+)[|](.+)'",
        ],
        "unnamed groups",
    ),
    "glob_matches_nothing": Case(
        lambda d, m: [*_sts_file(d, _sts(GOOD_STS)), "data.splits.test.path=nothing/*.csv"],
        "matches no file",
    ),
    "list_with_a_missing_file": Case(
        lambda d, m: [*_sts_file(d, _sts(GOOD_STS)), "data.splits.test.path=[pairs.csv,gone.csv]"],
        "gone.csv not found",
    ),
    "files_with_different_columns": Case(
        lambda d, m: [
            *_sts_file(d, _sts(GOOD_STS)),
            *_sts_file(d, _sts(GOOD_STS, header="sentence1,sentence2,gold"), name="more.csv")[:1],
            "data.splits.test.path=[pairs.csv,more.csv]",
        ],
        "the files of one table must have the same columns",
    ),
    "bad_value_in_the_second_file": Case(
        lambda d, m: [
            *_sts_file(d, _sts(GOOD_STS)),
            *_sts_file(d, _sts([*GOOD_STS[:2], ("x", "y", "high")]), name="more.csv")[:1],
            "data.splits.test.path=[pairs.csv,more.csv]",
        ],
        "more.csv: column 'score' row 3 has 'high'",
    ),
    "delimiter_of_two_characters": Case(
        lambda d, m: [*_sts_file(d, _sts(GOOD_STS)), "data.reader.delimiter=ab"], "is not one character"
    ),
    "path_of_the_wrong_type": Case(
        lambda d, m: [*_sts_file(d, _sts(GOOD_STS)), "data.splits.test.path=[]"],
        "no data source",
    ),
}


@pytest.fixture
def model_overrides(tiny_st_dir: Path) -> list[str]:
    return [
        "model=transformers_mean",
        "model.kind=sentence_transformers",
        f"model.name_or_path={tiny_st_dir}",
    ]


def _quiet(store: Store) -> list[str]:
    # An absolute store URI: MLflow caches stores by URI, so a relative sqlite:///mlflow.db
    # would reach the first test's database from every later in-process run.
    return [f"tracking.uri={store.uri}", "evaluation.show_progress=false"]


def _run_case(tmp_path: Path, template: Path, overrides: list[str], needle: str) -> None:
    store = _seeded_store(template, tmp_path)
    before = store.snapshot()
    result = invoke("evaluate", *overrides, *_quiet(store), cwd=tmp_path)
    message = assert_one_line_error(result, needle)
    (run,) = store.diff_since(before).assert_only_new_runs(status="FAILED")
    assert run.tags["error"] == message


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_a_failed_run(
    seeded_template: Path, name: str, tmp_path: Path, tiny_st_dir: Path, model_overrides
):
    case = CASES[name]
    data_dir = tmp_path / "data"
    overrides = case.setup(data_dir, tiny_st_dir)
    _run_case(tmp_path, seeded_template, [*model_overrides, "model.name=tiny", *overrides], case.needle)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_hint_says_permissions(
    seeded_template: Path, tmp_path: Path, model_overrides
) -> None:
    path = _write(tmp_path / "data" / "pairs.csv", _sts(GOOD_STS))
    path.chmod(0)
    overrides = [*model_overrides, "model.name=tiny", f"data.splits.test.path={path}"]
    _run_case(tmp_path, seeded_template, overrides, "permission denied; make it readable")


# --- questionable data: a FINISHED run with counted warnings ---------------------------------------


def _warnings_of(tmp_path: Path, template: Path, overrides: list[str]) -> tuple[dict, list[dict]]:
    store = _seeded_store(template, tmp_path)
    before = store.snapshot()
    result = invoke("evaluate", *overrides, *_quiet(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and not result.error_lines
    (run,) = store.diff_since(before).assert_only_new_runs(status="FINISHED")
    artifacts = Path(run.artifact_uri.removeprefix("file://"))
    warnings = json.loads((artifacts / "warnings.json").read_text())["warnings"]
    results = (artifacts / "results.json").read_text()
    json.loads(results, parse_constant=lambda name: pytest.fail(f"results.json holds bare {name}"))
    return run.tags, warnings


def test_identical_duplicate_qrels_and_unjudged_queries_are_counted_warnings(
    tmp_path, seeded_template, model_overrides
):
    qrels = "q1\td1\t1\nq1\td1\t1\nq1\td1\t1\nq2\td2\t0\n"
    tags, warnings = _warnings_of(
        tmp_path, seeded_template, [*model_overrides, "model.name=tiny", *_retrieval(tmp_path / "d", qrels)]
    )
    counts = {w["code"]: w["count"] for w in warnings}
    assert counts == {"duplicate_qrels": 2, "queries_without_relevant_documents": 1}
    assert tags["embsel.data_warnings"] == "duplicate_qrels=2; queries_without_relevant_documents=1"


def test_some_unseen_test_labels_and_case_twins_are_counted_warnings(
    tmp_path, seeded_template, model_overrides
):
    overrides = _classification(tmp_path / "d", "a,x\nb,y\nc,x\nd,y\ne,Y\n", "f,x\ng,y\nh,z\ni,z\nj,x\n")
    _, warnings = _warnings_of(tmp_path, seeded_template, [*model_overrides, "model.name=tiny", *overrides])
    counts = {w["code"]: w["count"] for w in warnings}
    assert counts == {"labels_differ_in_case": 1, "test_labels_not_in_train": 2}
    assert any("2 of 5 test rows" in w["message"] for w in warnings)


# --- the reader features that make it work, through config alone --------------------------------


def test_tilde_deletes_a_reader_option_and_tab_escape_from_the_command_line(tmp_path, model_overrides):
    _write(
        tmp_path / "d" / "pairs.txt",
        "sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{c}\n" for a, b, c in GOOD_STS),
    )
    base = [
        *model_overrides,
        "model.name=tiny",
        f"data.root={tmp_path / 'd'}",
        "data.splits.test.path=pairs.txt",
    ]
    store = Store(tmp_path)
    base += _quiet(store)
    result = invoke("evaluate", *base, "data.reader.format=csv", 'data.reader.delimiter="\\t"', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the tab-separated .txt read as csv with a literal backslash-t delimiter, then ~ back to the default
    result = invoke("evaluate", *base, "data.reader.format=tsv", "~data.reader.format", cwd=tmp_path)
    assert_one_line_error(result, "cannot tell the format")  # back to "from the extension": .txt is none
    statuses = sorted(run.status for run in store.runs().values())
    assert statuses == ["FAILED", "FINISHED"]


SICK_HEADER = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment"


def _sick_files(root: Path, rng: np.random.Generator) -> list[tuple[str, str, float]]:
    """Three SICK-format files (the trial one with CRLF line ends); returns every pair in order."""
    words = ["a man", "a woman", "the dog", "a child", "two cats", "the chef", "a boy", "a girl"]
    verbs = ["is playing", "is cooking", "runs", "is sleeping", "is eating", "is jumping"]
    pairs, pair_id = [], 1
    for name, count, newline in (
        ("SICK_train.txt", 40, "\n"),
        ("SICK_trial.txt", 12, "\r\n"),
        ("SICK_test_annotated.txt", 30, "\n"),
    ):
        lines = [SICK_HEADER]
        for _ in range(count):
            a = f"{rng.choice(words)} {rng.choice(verbs)} ({pair_id})"  # unique: no tied cosines
            b = f"{rng.choice(words)} {rng.choice(verbs)} outside"
            score = round(float(rng.uniform(1, 5)), 1)
            lines.append(f"{pair_id}\t{a}\t{b}\t{score}\tNEUTRAL")
            pairs.append((a, b, score))
            pair_id += 1
        _write(root / "sick" / name, "\n".join(lines) + "\n", newline=newline)
    return pairs


class HashEncoder:
    """Deterministic pseudo-embeddings per text (seeded by its hash): the same for us and MTEB."""

    def __init__(self) -> None:
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts, *, role=None, show_progress=False) -> np.ndarray:
        import zlib

        rows = []
        for text in texts:
            if text not in self.cache:
                seed = zlib.crc32(text.encode("utf-8"))
                self.cache[text] = np.random.default_rng(seed).standard_normal(16).astype(np.float32)
            rows.append(self.cache[text])
        return np.stack(rows)


def _compose_data(name: str, root: Path):
    from omegaconf import OmegaConf

    from embsel_mlflow.config.store import compose_config

    cfg = compose_config("evaluate", [f"data={name}", f"data.root={root}"])
    return OmegaConf.to_object(cfg).data


def test_sick_r_three_files_one_with_crlf_read_as_one_split_through_config(tmp_path: Path) -> None:
    from scipy.stats import spearmanr

    from embsel_mlflow.families import build_task, load_task_data

    pairs = _sick_files(tmp_path, np.random.default_rng(0))
    data = load_task_data(_compose_data("sick_r", tmp_path))
    assert data.examples.s1 == [a for a, _, _ in pairs]
    assert data.examples.s2 == [b for _, b, _ in pairs]  # no trailing "\r" from the CRLF file
    assert data.examples.scores.tolist() == [s for _, _, s in pairs]
    sources = data.tables[0].source.split(", ")
    assert [Path(s).name for s in sources] == ["SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"]

    encoder = HashEncoder()
    result = build_task(data, EvaluationConfig(show_progress=False)).evaluate(encoder)
    e1, e2 = encoder.encode([a for a, _, _ in pairs]), encoder.encode([b for _, b, _ in pairs])
    cosine = (e1 * e2).sum(1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
    expected = spearmanr(cosine, [s for _, _, s in pairs]).statistic
    assert result.scores["cosine_spearman"] == pytest.approx(expected, abs=1e-9)


def _trec_files(root: Path, rng: np.random.Generator) -> dict[str, list[tuple[str, str]]]:
    coarse = {"DESC": "manner", "ENTY": "animal", "HUM": "ind", "LOC": "city", "NUM": "date", "ABBR": "exp"}
    stems = ["What is the café", "Who wrote Les Misérables", "Where is Zürich", "When did Brontë die", "How"]
    splits = {}
    for name, count in (("train_5500.label", 60), ("TREC_10.label", 25)):
        rows = []
        for i in range(count):
            label = list(coarse)[int(rng.integers(0, len(coarse)))]
            rows.append((label, f"{rng.choice(stems)} {label.lower()} {i} ?"))
        text = "".join(f"{label}:{coarse[label]} {question}\n" for label, question in rows)
        _write(root / "trec" / name, text, encoding="latin-1")
        splits[name] = rows
    return splits


def test_trec_latin1_label_lines_through_config_equal_mtebs_accuracy(tmp_path: Path) -> None:
    mteb = pytest.importorskip("mteb", reason="mteb (a test extra) is the reference implementation")
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.mocks.mock_tasks.classification import MockClassificationTask

    from embsel_mlflow.evaluation.labels import label_ids
    from embsel_mlflow.families import build_task, load_task_data
    from tests.test_mteb_parity import _mock_metadata, _mteb_scores

    files = _trec_files(tmp_path, np.random.default_rng(1))
    data = load_task_data(_compose_data("trec", tmp_path))
    train, test = files["train_5500.label"], files["TREC_10.label"]
    assert data.examples.train_texts == [q for _, q in train]  # Latin-1 decoded: é, ü, ë intact
    assert data.examples.test_labels == [label for label, _ in test]
    assert "Misérables" in " ".join(data.examples.train_texts)

    encoder = HashEncoder()
    ours = build_task(data, EvaluationConfig(show_progress=False)).evaluate(encoder).scores
    ids = label_ids(data.examples.train_labels, data.examples.test_labels)
    table = {text: encoder.encode([text])[0] for text in [q for _, q in train + test]}

    class ParityTrec(AbsTaskClassification):
        metadata = _mock_metadata(MockClassificationTask, "ParityTrec")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict(
                {
                    split: Dataset.from_dict(
                        {"text": [q for _, q in rows], "label": [ids[y] for y, _ in rows]}
                    )
                    for split, rows in (("train", train), ("test", test))
                }
            )
            self.data_loaded = True

    assert mteb is not None
    theirs = _mteb_scores(ParityTrec(), table)
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-12)
    assert ours["f1"] == pytest.approx(theirs["f1"], abs=1e-12)
