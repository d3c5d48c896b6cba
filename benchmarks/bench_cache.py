"""Embedding cache: a warm `embsel evaluate` vs a cold one, same model and data.

    python benchmarks/bench_cache.py --model minilm --data stsb        # needs ../shared/data
    python benchmarks/bench_cache.py --model static_minilm --data demo_sts

Runs the evaluate library path (compose -> load -> evaluate -> log into a fresh sqlite store)
twice against one empty cache directory. Prints both encode times and wall times, the
speed-up, the logged cache hits and misses, and checks that both runs logged the same metrics.
The bar: encoding (what the cache removes) at least 10x faster when warm.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BAR = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", default="stsb")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("EMBSEL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    sys.path.insert(0, str(REPO_ROOT))

    from mlflow import MlflowClient

    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.evaluate import evaluate_job

    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        overrides = [
            f"model={args.model}",
            f"data={args.data}",
            f"cache.dir={Path(tmp) / 'cache'}",
            "evaluation.show_progress=false",
            "tracking.log_per_item=false",
        ]
        walls = []
        for _ in range(2):
            start = time.perf_counter()
            evaluate_job(compose_config("evaluate", overrides), TrackingConfig(uri=store), overrides)
            walls.append(time.perf_counter() - start)
        client = MlflowClient(store)
        experiment = client.get_experiment_by_name("embsel")
        cold, warm = (
            run.data.metrics
            for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
        )

    quality = {key for key in cold if key.startswith("test/")} | {"main_score"}
    same = all(cold[key] == warm[key] for key in quality)
    ratio = cold["encode_seconds"] / max(warm["encode_seconds"], 1e-9)
    print(f"{args.model} on {args.data}")
    misses, hits = cold["cache_misses"], warm["cache_hits"]
    print(f"  cold: encode {cold['encode_seconds']:.2f} s, wall {walls[0]:.2f} s, misses {misses:.0f}")
    print(f"  warm: encode {warm['encode_seconds']:.3f} s, wall {walls[1]:.2f} s, hits {hits:.0f}")
    print(f"  encode speed-up {ratio:.1f}x (bar {BAR:.0f}x), wall speed-up {walls[0] / walls[1]:.1f}x")
    print(f"  identical metrics: {same} (main_score {cold['main_score']:.5f})")
    if not same or ratio < BAR:
        sys.exit(1)


if __name__ == "__main__":
    main()
