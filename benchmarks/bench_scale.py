"""How retrieval evaluation scales: SciFact in a corpus of 10k, 100k and 1M documents.

The corpus is SciFact's 5,183 documents followed by distractors: each a distinct pair of
sentences drawn from the other shared datasets (STS-B, Banking77, MRPC), chosen by a seeded
bijection so that every distractor differs and the corpora are prefixes of each other. The
queries and qrels are SciFact's. Each size is written in SciFact's BEIR layout to
``<out>/<size>/scifact/``, so ``embsel evaluate data=scifact data.root=<out>/<size>`` reads it.

Each ``embsel evaluate`` (static_minilm; float32, int8 and binary stored vectors) runs in a
fresh process under ``/usr/bin/time``-like accounting (``getrusage`` of the child), cold (an
empty embedding cache) and then warm (every embedding cached). The script prints peak RSS,
wall time and nDCG@10 per size, the 1M/100k ratios, and checks the bar: peak RSS at 1M at most
1.5x that at 100k (float32), wall time at most 12x, and SciFact's nDCG@10 in the 1M corpus
equal to an exact in-memory search over the same (cached) embeddings. It also runs
``embsel monitor`` with the 1M corpus as its reference and reports its peak RSS.

    python benchmarks/bench_scale.py [--out /tmp/embsel-scale] [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SEED = 23
SIZES = (10_000, 100_000, 1_000_000)
RSS_BAR, WALL_BAR = 1.5, 12.0


def distractor_sentences(shared: Path) -> list[str]:
    """Every distinct sentence of STS-B, Banking77 and MRPC, in a fixed order."""
    sentences: list[str] = []
    for name in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        with (shared / "stsb" / name).open(encoding="utf-8") as handle:
            for line in handle:
                fields = line.rstrip("\n").split("\t")
                sentences.extend(fields[5:7])
    for name in ("train.csv", "test.csv"):
        with (shared / "banking77" / name).open(encoding="utf-8", newline="") as handle:
            sentences.extend(row["text"] for row in csv.DictReader(handle))
    for name in ("msr_paraphrase_train.txt", "msr_paraphrase_test.txt"):
        with (shared / "mrpc" / name).open(encoding="utf-8-sig") as handle:
            next(handle)
            for line in handle:
                sentences.extend(line.rstrip("\n").split("\t")[3:5])
    return sorted({s.strip() for s in sentences if s.strip()})


def distractors(sentences: list[str], count: int, seed: int = SEED) -> Iterator[str]:
    """``count`` distinct two-sentence texts: i -> (x, y) = divmod-free mixed radix, scrambled.

    (i mod n, i div n) is distinct for every i < n**2, and (x, y) -> (p[x], q[(x + y) mod n])
    is a bijection, so no two distractors repeat (nor can they equal a SciFact abstract).
    """
    n = len(sentences)
    if count > n * n:
        raise ValueError(f"at most {n * n} distractors from {n} sentences, asked for {count}")
    rng = np.random.default_rng(seed)
    first, second = rng.permutation(n), rng.permutation(n)
    for i in range(count):
        x, y = i % n, i // n
        yield f"{sentences[first[x]]} {sentences[second[(x + y) % n]]}"


def build_corpora(shared: Path, out: Path, sizes: tuple[int, ...] = SIZES) -> dict[int, Path]:
    """Write SciFact + distractors for each size under ``out/<size>/scifact``; return the data roots.

    Files already written (same size, same first and last line count) are kept.
    """
    scifact = shared / "scifact"
    with (scifact / "corpus.jsonl").open(encoding="utf-8") as handle:
        scifact_lines = [line if line.endswith("\n") else line + "\n" for line in handle if line.strip()]
    sentences = distractor_sentences(shared)
    roots: dict[int, Path] = {}
    for size in sorted(sizes):
        if size < len(scifact_lines):
            raise ValueError(f"size {size} is smaller than SciFact's {len(scifact_lines)} documents")
        root = out / str(size)
        target = root / "scifact"
        corpus = target / "corpus.jsonl"
        roots[size] = root
        if corpus.is_file() and _line_count(corpus) == size:
            continue
        (target / "qrels").mkdir(parents=True, exist_ok=True)
        for name in ("queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"):
            (target / name).write_bytes((scifact / name).read_bytes())
        tmp = corpus.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.writelines(scifact_lines)
            for i, text in enumerate(distractors(sentences, size - len(scifact_lines))):
                handle.write(json.dumps({"_id": f"x{i}", "title": "", "text": text}) + "\n")
        tmp.replace(corpus)
    return roots


def _line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)
