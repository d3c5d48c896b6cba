"""`embsel monitor` on real data: false alarms, sensitivity and the quality alert, with MiniLM.

    python benchmarks/monitor_calibration.py              # needs ../shared/data and the offline minilm
    python benchmarks/monitor_calibration.py --splits 20 --cache-dir /tmp/embsel-cache

Each dataset is encoded once through the embedding cache and the embeddings are reused.
Prints, with the default monitor config (alpha 0.05, 1000 permutations, 1000 texts per side):

1. Calibration: 20 random splits of Banking77 train (10,003 texts) into reference and current
   halves (no drift); alerts per method. Bar: each permutation-based method (mean distances, MMD)
   alerts in at most 2 of 20. The classifier and KS tests are shown too.
2. Strong shift: STS-B test sentences vs SciFact abstracts (1,000 sampled). Bar: every p < 0.01.
3. Subtle shift: Banking77 train split in random halves; the reference is one half (all 77
   intents), the current window the other half's texts of 10 random intents. Bar: MMD and the
   classifier detect it. (Train vs test is no null control: the test split has 40 texts per
   intent, the train split is imbalanced, and the means and MMD rightly tell them apart.)
4. Quality: `embsel monitor` itself (a real sqlite store) on two Banking77 windows of 600 test
   rows: as labelled, and with the labels shuffled (tolerance 0.1: on 600 rows the accuracy's
   standard error is about 0.02). Bar: the shuffled one raises the quality alert (exit code 3)
   and the other does not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PERMUTATION_METHODS = ("mean_cosine", "mean_euclidean", "mmd")
METHODS = (*PERMUTATION_METHODS, "classifier", "ks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--scifact-docs", type=int, default=1000)
    parser.add_argument("--intents", type=int, default=10)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: $EMBSEL_CACHE_DIR)")
    args = parser.parse_args()
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("EMBSEL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    if args.cache_dir:
        os.environ["EMBSEL_CACHE_DIR"] = args.cache_dir
    sys.path.insert(0, str(REPO_ROOT))

    import numpy as np

    from embsel_mlflow.candidates import build_encoder
    from embsel_mlflow.config import CacheConfig, DriftConfig, EvaluateJobConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.monitoring.drift import detect_drift
    from embsel_mlflow.monitoring.windows import task_texts

    def job(data: str) -> EvaluateJobConfig:
        return to_job_config(
            compose_config("evaluate", ["model=minilm", f"data={data}"]), EvaluateJobConfig, "x"
        )

    started = time.perf_counter()
    banking = job("banking77")
    encoder = build_encoder(banking.model, cache=open_cache(CacheConfig()))

    def encode(texts: list[str], what: str) -> np.ndarray:
        t0 = time.perf_counter()
        embeddings = encoder.encode(texts)
        print(f"  encoded {what}: {len(texts)} texts in {time.perf_counter() - t0:.1f} s", flush=True)
        return embeddings

    cfg = DriftConfig()
    print(f"drift config: alpha={cfg.alpha} permutations={cfg.permutations} max_samples={cfg.max_samples}")
    train = load_task_data(banking.data, split="train")
    test = load_task_data(banking.data)
    train_texts, train_labels = train.examples.test_texts, train.examples.test_labels
    train_emb = encode(train_texts, "banking77 train")

    # 1. calibration
    print(f"\n1. calibration: {args.splits} random halves of banking77 train ({len(train_texts)} texts)")
    alerts = dict.fromkeys(METHODS, 0)
    overall = 0
    rng = np.random.default_rng(12345)
    for split in range(args.splits):
        order = rng.permutation(len(train_emb))
        half = len(order) // 2
        t0 = time.perf_counter()
        results = detect_drift(train_emb[order[:half]], train_emb[order[half:]], cfg)
        ps = {r.method: r.p_value for r in results}
        for r in results:
            alerts[r.method] += r.drifted
        overall += min(ps.values()) < cfg.alpha / len(ps)
        shown = " ".join(f"{m}={ps[m]:.3f}" for m in METHODS)
        print(f"  split {split:2d}: {shown}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    for method in METHODS:
        bar = " (bar: <= 2)" if method in PERMUTATION_METHODS else ""
        verdict = "" if not bar else ("  PASS" if alerts[method] <= 2 else "  FAIL")
        print(f"  {method:15s} false alarms: {alerts[method]}/{args.splits}{bar}{verdict}")
    print(f"  window verdict (Bonferroni over methods) false alarms: {overall}/{args.splits}")

    # 2. strong shift
    stsb = load_task_data(job("stsb").data)
    stsb_texts, _ = task_texts(stsb)
    scifact = load_task_data(job("scifact").data)
    docs = list(scifact.examples.corpus.values())
    pick = np.random.default_rng(0).choice(len(docs), size=min(args.scifact_docs, len(docs)), replace=False)
    docs = [docs[i] for i in sorted(pick)]
    print(f"\n2. strong shift: STS-B test sentences ({len(stsb_texts)}) vs SciFact abstracts ({len(docs)})")
    stsb_emb = encode(stsb_texts, "stsb test")
    docs_emb = encode(docs, "scifact abstracts")
    strong = detect_drift(stsb_emb, docs_emb, cfg)
    for r in strong:
        verdict = "PASS" if r.p_value < 0.01 else "FAIL"
        print(f"  {r.method:15s} statistic={r.statistic:.4f} p={r.p_value:.2e}  {verdict}")

    # 3. subtle shift
    intents = sorted(set(train_labels))
    chosen = set(np.random.default_rng(7).choice(intents, size=args.intents, replace=False).tolist())
    order = np.random.default_rng(8).permutation(len(train_labels))
    reference_rows, other = order[: len(order) // 2], order[len(order) // 2 :]
    rows = [i for i in other if train_labels[i] in chosen]
    print(
        f"\n3. subtle shift: half of banking77 train, all {len(intents)} intents ({len(reference_rows)}) vs "
        f"the other half's texts of {args.intents} intents ({len(rows)}): {', '.join(sorted(chosen))}"
    )
    subtle = detect_drift(train_emb[reference_rows], train_emb[rows], cfg)
    for r in subtle:
        need = " (bar: detect)" if r.method in ("mmd", "classifier") else ""
        verdict = ("  PASS" if r.drifted else "  FAIL") if need else ""
        shown = f"statistic={r.statistic:.4f} p={r.p_value:.2e} drifted={r.drifted}"
        print(f"  {r.method:15s} {shown}{need}{verdict}")

    # 4. quality alert, through the CLI entry point on a real sqlite store
    print("\n4. quality: `embsel monitor` on banking77 windows of 600 test rows, labelled and shuffled")
    print(f"  -> {json.dumps(_quality(test, REPO_ROOT))}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


def _quality(test, repo_root: Path) -> dict:
    import contextlib
    import io

    import numpy as np
    import pandas as pd

    from embsel_mlflow.entrypoints import monitor

    frame = pd.DataFrame({"text": test.examples.test_texts, "category": test.examples.test_labels})
    sample = frame.sample(n=600, random_state=3).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        windows = Path(tmp) / "windows"
        windows.mkdir()
        sample.to_csv(windows / "1_labelled.csv", index=False)
        shuffled = sample.assign(category=np.random.default_rng(4).permutation(sample["category"].to_numpy()))
        shuffled.to_csv(windows / "2_shuffled.csv", index=False)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = monitor.main(
                [
                    "model=minilm",
                    "data=banking77",
                    f"current.dir={windows}",
                    "+current.table.columns.label=category",
                    "monitor.quality.tolerance=0.1",  # 600 rows: accuracy's standard error is ~0.02
                    f"tracking.uri=sqlite:///{tmp}/mlflow.db",
                ]
            )
        print("  " + out.getvalue().replace("\n", "\n  "))
        text = out.getvalue()
        labelled = next(line for line in text.splitlines() if "1_labelled" in line)
        shuffled_line = next(line for line in text.splitlines() if "2_shuffled" in line)
        return {
            "exit_code": code,
            "labelled_quality_drop": "QUALITY_DROP" in labelled,
            "shuffled_quality_drop": "QUALITY_DROP" in shuffled_line,
            "pass": code == 3 and "QUALITY_DROP" in shuffled_line and "QUALITY_DROP" not in labelled,
        }


if __name__ == "__main__":
    sys.exit(main())
