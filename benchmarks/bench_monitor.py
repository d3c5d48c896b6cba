"""Speed of `embsel monitor`: a 10k-text window against a cached 10k reference vs just encoding it.

    python benchmarks/bench_monitor.py                      # needs ../shared/data and the offline minilm
    python benchmarks/bench_monitor.py --texts 10000 --cache-dir /tmp/embsel-cache

Reference: Banking77 train (10,003 texts), encoded once into the embedding cache beforehand.
Current: 10,000 new short texts (Banking77 test texts in a few phrasings, so none is cached).

- "encode": the uncached model encodes the 10k current texts (what monitoring cannot avoid);
- "monitor": the monitoring library path with the default config (1000 permutations):
  reference from the cache + its text profile, the window encoded through the cache, all drift
  tests, text signals, nearest neighbours of the most shifted texts.

The bar: monitor / encode <= 1.3. The two are timed on disjoint but equally long phrasings
(encode on one set, monitor on another), so the monitor's encoder sees no cached text.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BAR = 1.3
PHRASINGS = ("{}", "{} please", "hi, {}", "{} thanks", "hello, {}", "{} asap", "so {}", "{}?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: $EMBSEL_CACHE_DIR)")
    args = parser.parse_args()
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("EMBSEL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    if args.cache_dir:
        os.environ["EMBSEL_CACHE_DIR"] = args.cache_dir
    sys.path.insert(0, str(REPO_ROOT))

    from embsel_mlflow.candidates import build_encoder
    from embsel_mlflow.config import CacheConfig, EvaluateJobConfig, MonitorConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.jobs.app import to_job_config
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.monitoring.runner import monitor_window, prepare_reference
    from embsel_mlflow.text.tokens import load_candidate_tokenizer

    composed = compose_config("evaluate", ["model=minilm", "data=banking77"])
    job = to_job_config(composed, EvaluateJobConfig, "evaluate")
    encoder = build_encoder(job.model, cache=open_cache(CacheConfig()))
    reference_texts = load_task_data(job.data, split="train").examples.test_texts
    test_texts = load_task_data(job.data).examples.test_texts
    t0 = time.perf_counter()
    encoder.encode(reference_texts)  # the cached reference (a no-op when already cached)
    print(f"reference: {len(reference_texts)} texts cached ({time.perf_counter() - t0:.1f} s)")
    variants = [p.format(t) for p in PHRASINGS for t in test_texts]
    half = len(variants) // 2
    encode_texts = variants[:half][: args.texts]
    monitor_texts = variants[half:][: args.texts]
    encoder.inner.encode(test_texts[:64])  # warm-up: lazy initialisation is no one's cost

    t0 = time.perf_counter()
    encoder.inner.encode(encode_texts)
    encode_s = time.perf_counter() - t0
    print(f"encode:  {len(encode_texts)} texts, uncached model: {encode_s:.1f} s")

    cfg = MonitorConfig()
    t0 = time.perf_counter()
    tokenizer = load_candidate_tokenizer(job.model.name, job.model)
    reference = prepare_reference(reference_texts, encoder, tokenizer=tokenizer, cfg=cfg, profile=job.profile)
    report = monitor_window(
        reference, monitor_texts, encoder, cfg=cfg, profile=job.profile, tokenizer=tokenizer, name="bench"
    )
    monitor_s = time.perf_counter() - t0
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    print(
        f"monitor: {len(monitor_texts)} texts vs {len(reference_texts)} cached: {monitor_s:.1f} s ({parts})"
    )
    drift = cfg.drift
    print(f"  permutations={drift.permutations} max_samples={drift.max_samples}; verdict {report.status}")
    ratio = monitor_s / encode_s
    print(f"ratio monitor/encode = {ratio:.2f} (bar <= {BAR}): {'PASS' if ratio <= BAR else 'FAIL'}")
    return 0 if ratio <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
