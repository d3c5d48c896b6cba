"""`embsel profile` library: planted problems found with exact values, nothing invented; bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from embsel_mlflow.config import (
    DataConfig,
    ModelConfig,
    ModelKind,
    ProfileConfig,
    TableConfig,
    TaskType,
)
from embsel_mlflow.errors import DataError
from embsel_mlflow.profiling.columns import ColumnKind
from embsel_mlflow.profiling.findings import Severity
from embsel_mlflow.profiling.profile import profile_job_data

WORDS = [
    f"{a}{b}"
    for a in ("bar", "cel", "dom", "fin", "gra", "hol", "kem", "lup")
    for b in ("ast", "ena", "ido", "onu", "ure", "yth", "ock", "ile", "arp", "emo")
]
FAST = ProfileConfig(show_progress=False)


def _sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(8)) + f" n{seed}x{i}" for i in range(count)]


def _planted(root: Path) -> DataConfig:
    """train: 1020 rows, 51 empty texts (5%), 102 exact duplicates (10%), labels 1000:20 (1:50),
    3 duplicates with another label (conflicts), an image-path column; test: 7 texts leaked from train."""
    unique = _sentences(867, seed=1)
    texts = unique + [""] * 51
    labels = ["small"] * 20 + ["big"] * 847 + ["big"] * 51
    texts += [f"  {unique[i].upper()} " for i in range(3)]  # same text after normalisation, other label
    texts += [unique[i].replace(" ", "  ") for i in range(20, 119)]
    labels += ["big"] * 102
    (root / "images").mkdir()
    for i in range(10):
        (root / "images" / f"img_{i:04d}.jpg").write_bytes(b"\xff\xd8")
    images = [f"images/img_{i:04d}.jpg" for i in range(len(texts))]
    pd.DataFrame({"text": texts, "label": labels, "image": images}).to_csv(root / "train.csv", index=False)
    test_texts = _sentences(93, seed=2) + unique[200:207]
    test = pd.DataFrame({"text": test_texts, "label": ["small", "big"] * 50, "image": images[:100]})
    test.to_csv(root / "test.csv", index=False)
    return DataConfig(
        name="planted",
        task=TaskType.classification,
        root=str(root),
        splits={"train": TableConfig(path="train.csv"), "test": TableConfig(path="test.csv")},
    )


def _problems(profile) -> set[tuple[str, str]]:
    return {(f.code, f.column) for f in profile.findings if f.severity != Severity.info}


def test_planted_problems_are_found_with_exact_values_and_nothing_else(tmp_path: Path) -> None:
    profile = profile_job_data(_planted(tmp_path), cfg=FAST)
    text = profile.column("train/text").text
    assert (text.rows, text.null_count + text.empty_count, text.exact_duplicates) == (1020, 51, 102)
    assert text.empty_rate + text.null_rate == pytest.approx(0.05) and text.duplicate_rate == pytest.approx(
        0.1
    )
    labels = profile.checks["labels/train"]
    assert labels["class_counts"] == {"big": 1000, "small": 20}
    assert (
        labels["imbalance_ratio"] == 50.0
        and labels["conflicting_texts"] == 3
        and labels["rare_classes"] == []
    )
    assert profile.checks["leakage"] == {"test_in_train": 7}
    image = profile.column("train/image").type
    assert image.kind == ColumnKind.image_path and image.confidence == 1.0
    assert "10/1020 local path(s) checked exist" in image.evidence
    assert _problems(profile) == {
        ("empty_texts", "train/text"),
        ("exact_duplicates", "train/text"),
        ("label_imbalance", "train/label"),
        ("conflicting_labels", "train/label"),
        ("modality_mismatch", "train/image"),
        ("modality_mismatch", "test/image"),
        ("split_leakage", "test/text"),
    }
    messages = {f.code: f.message for f in profile.findings}
    assert messages["exact_duplicates"].startswith("10.0% exact duplicates in `train/text` (102 of 1020")
    assert messages["modality_mismatch"].endswith(
        "holds image paths: a text embedding model does not fit this data"
    )
    assert "1:50 imbalance" in messages["label_imbalance"]
    metrics = profile.metrics()
    assert metrics["profile/train/text/duplicate_rate"] == pytest.approx(0.1)
    assert metrics["profile/findings/error"] == 2 and metrics["profile/findings/warn"] == 5


def test_a_clean_dataset_has_no_warning(tmp_path: Path) -> None:
    from embsel_mlflow.data import demo_data_dir

    data = DataConfig(
        name="demo",
        task=TaskType.classification,
        root=str(demo_data_dir()),
        splits={
            "train": TableConfig(path="classification/train.csv"),
            "test": TableConfig(path="classification/test.csv"),
        },
    )
    profile = profile_job_data(data, cfg=FAST)
    assert _problems(profile) == set()
    assert {c.key: c.type.kind for c in profile.columns} == {
        "train/text": ColumnKind.text,
        "train/label": ColumnKind.categorical,
        "test/text": ColumnKind.text,
        "test/label": ColumnKind.categorical,
    }
    assert profile.column("train/text").text.languages == {"en": 1.0}


def test_metadata_columns_are_described_but_raise_no_finding_and_no_metric(tmp_path: Path) -> None:
    """STS-B's trailing source1/source2: mostly empty, repeated texts the model never embeds."""
    s1, s2 = _sentences(200, seed=3), _sentences(200, seed=4)
    source = ["headlines-2013 pair from the news"] * 20 + [""] * 180  # 90% empty, all duplicates
    frame = pd.DataFrame({"sentence1": s1, "sentence2": s2, "score": [i % 6 for i in range(200)]})
    frame.assign(source1=source, source2=source).to_csv(tmp_path / "test.csv", index=False)
    columns = {"s1": "sentence1", "s2": "sentence2"}
    data = DataConfig(
        name="sts_meta", task=TaskType.sts, root=str(tmp_path),
        splits={"test": TableConfig(path="test.csv", columns=columns)},
    )  # fmt: skip
    profile = profile_job_data(data, cfg=FAST)
    assert {f.column for f in profile.findings if f.column} <= {"test/s1", "test/s2", "test/score"}
    assert [c.key for c in profile.columns if c.metadata] == ["test/source1", "test/source2"]
    assert profile.column("test/source1").text.empty_rate == pytest.approx(0.9)  # still described
    assert "source1:metadata" in profile.summary()
    metrics = profile.metrics()
    assert not [key for key in metrics if "source" in key]
    assert metrics["profile/test/rows"] == 200 and "profile/test/s1/duplicate_rate" in metrics
    assert len(metrics) < 20  # the headline only; every figure is in profile.json
    column = next(c for c in profile.to_dict()["columns"] if c["column"] == "source2")
    assert column["metadata"] is True and column["text"]["duplicate_rate"] > 0.05


def test_token_lengths_match_the_tokenizer_and_word_counts_without_one(
    tmp_path: Path, tiny_st_dir: Path
) -> None:
    from transformers import AutoTokenizer

    texts = _sentences(40, seed=3) + [" ".join(_sentences(6, seed=4))] * 3
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "t.csv", index=False)
    candidates = {
        "tiny": ModelConfig(name="tiny", name_or_path=str(tiny_st_dir), max_seq_length=24),
        "lsa": ModelConfig(name="lsa", name_or_path="tfidf-svd", kind=ModelKind.lsa),
    }
    profile = profile_job_data(
        None, table=TableConfig(path="t.csv"), table_root=tmp_path, candidates=candidates, cfg=FAST
    )
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_st_dir))
    direct = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    stats = profile.column("table/text").tokens
    assert stats["tiny"].lengths.tolist() == direct
    assert stats["tiny"].truncated_count == sum(n > 24 for n in direct) > 0
    assert stats["lsa"].unit == "words" and stats["lsa"].lengths.tolist() == [len(t.split()) for t in texts]
    assert ("truncation", "table/text") in _problems(profile)
    assert "profile/table/text/truncation_rate/tiny" in profile.metrics()


def test_retrieval_checks(tmp_path: Path) -> None:
    corpus = [{"_id": f"d{i}", "title": f"title {i}", "text": t} for i, t in enumerate(_sentences(6, seed=5))]
    queries = [
        {"_id": "q1", "text": "first question here"},
        {"_id": "q2", "text": "title 0 " + corpus[0]["text"]},
        {"_id": "q3", "text": "third one"},
    ]
    for name, rows in (("corpus", corpus), ("queries", queries)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td0\t1\nq3\td2\t0\nq3\tdX\t1\n"
    )
    data = DataConfig(
        name="r",
        task=TaskType.retrieval,
        root=str(tmp_path),
        corpus=TableConfig(path="corpus.jsonl", columns={"id": "_id"}),
        queries=TableConfig(path="queries.jsonl", columns={"id": "_id"}),
        splits={
            "test": TableConfig(path="test.tsv", columns={"query_id": "query-id", "doc_id": "corpus-id"})
        },
    )
    profile = profile_job_data(data, cfg=FAST)
    figures = profile.checks["retrieval/test"]
    assert figures["queries"] == 3 and figures["qrels_missing_documents"] == 1
    assert figures["queries_without_positive"] == 0 and figures["queries_equal_to_a_document"] == 1
    assert figures["positives_per_query_mean"] == 1.0
    assert {"qrels_missing_ids", "query_document_overlap"} <= {f.code for f in profile.findings}


# --- bad input: a clear error or a clearly reported finding, never a traceback -----------------


def _table(tmp_path: Path, name: str, content: str | bytes) -> TableConfig:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return TableConfig(path=name)


def test_empty_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"has no rows \(an empty dataset\)"):
        profile_job_data(None, table=_table(tmp_path, "e.csv", "text,label\n"), table_root=tmp_path, cfg=FAST)


def test_non_utf8_bytes_are_a_clear_error(tmp_path: Path) -> None:
    table = _table(tmp_path, "latin.csv", "text\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match="encoding"):
        profile_job_data(None, table=table, table_root=tmp_path, cfg=FAST)


def test_all_null_column_mixed_types_and_a_huge_text_are_findings(tmp_path: Path) -> None:
    huge = "word " * 200_000  # 1 MB
    rows = [
        {"text": f"sentence number {i} is here", "notes": None, "value": i if i % 2 else f"v{i}"}
        for i in range(30)
    ] + [{"text": huge, "notes": None, "value": 1}]
    table = _table(tmp_path, "bad.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    profile = profile_job_data(None, table=table, table_root=tmp_path, cfg=FAST)
    assert profile.column("table/notes").type.kind == ColumnKind.empty
    found = {(f.code, f.column): f for f in profile.findings}
    assert ("empty_column", "table/notes") in found
    assert found[("mixed_types", "table/value")].evidence["value_types"] == {"str": 15, "int": 16}
    long = found[("very_long_texts", "table/text")]
    assert long.evidence == {"count": 1, "longest_chars": 1_000_000}


def test_near_duplicates_match_datasketch_minhash_lsh() -> None:
    """Our numpy MinHash LSH gives datasketch's signatures, bands and near-duplicate count."""
    import zlib

    from datasketch import MinHash, MinHashLSH
    from datasketch.lsh import _optimal_param

    from embsel_mlflow.text import duplicates

    for threshold, num_perm in ((0.5, 32), (0.8, 64), (0.9, 128)):
        assert duplicates.lsh_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    rng = random.Random(5)
    base = _sentences(300, seed=6)
    edited = [t.replace(t.split()[rng.randrange(8)], "xx", 1) for t in base[:40]]  # near copies
    texts = [*base, *edited, "tiny", "x" * 3000]  # a short text; a long one spans several chunks
    shingles = [duplicates._shingles(t[:200], 5) for t in texts]
    shingles.append({f"{i:06d}".encode() for i in range(3000)})  # one set larger than a chunk
    reference = MinHash.bulk(shingles, num_perm=64, seed=1, hashfunc=zlib.crc32)
    ours = duplicates.minhash_signatures(shingles, 64)
    assert all((ours[i] == m.hashvalues).all() for i, m in enumerate(reference))

    lsh = MinHashLSH(threshold=0.8, num_perm=64)
    for key, minhash in enumerate(reference[: len(texts)]):
        lsh.insert(key, minhash, check_duplication=False)
    expected = sum(len(lsh.query(m)) > 1 for m in reference[: len(texts)])
    found = duplicates.near_duplicates(texts, threshold=0.8, ngram=5, num_perm=64, max_texts=10_000)
    assert found.texts_checked == len(texts) and found.with_near_duplicate == expected >= 10


def test_language_model_is_unpacked_once_and_classifies_as_py3langid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from py3langid.langid import classify

    from embsel_mlflow.text import language

    monkeypatch.setenv("EMBSEL_CACHE_DIR", str(tmp_path / "cache"))
    language.language_identifier.cache_clear()
    try:
        identifier = language.language_identifier()
        (unpacked,) = (tmp_path / "cache" / "models" / "py3langid").iterdir()
        assert sorted(p.name for p in unpacked.iterdir()) == sorted(
            f"{name}.npy" for name in language._MODEL_ARRAYS
        )
        texts = ["the cat sat on the mat", "le chat est sur le tapis", "der Hund schläft", "¿dónde estás?"]
        assert [identifier.classify(t) for t in texts] == [classify(t) for t in texts]
        language.language_identifier.cache_clear()
        stamp = (unpacked / "ptc.npy").stat().st_mtime_ns
        assert language.language_identifier().classify(texts[1])[0] == "fr"
        assert (unpacked / "ptc.npy").stat().st_mtime_ns == stamp  # read, not unpacked again
    finally:
        language.language_identifier.cache_clear()
