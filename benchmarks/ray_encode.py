"""Corpus encoding on Ray Data: a 100k-document encode on 1 vs 2 Ray nodes, side by side.

    python benchmarks/ray_encode.py                       # static_minilm, 100k documents
    python benchmarks/ray_encode.py --model minilm --documents 20000

The documents are built deterministically from the shared datasets' texts (SciFact's corpus,
STS-B, Banking77 and MRPC from ../shared/data): document i joins two of those texts and its
number, so all are distinct. Two local Ray clusters are started in turn (tests.engines.ray_cluster:
a head with 1 CPU; then a head and one worker node, 1 CPU each), and the same ``encode_into_cache``
that ``embsel embed`` runs encodes the documents into an empty embedding cache on each, with one
actor per CPU. The model is built (a static model distilled) once beforehand, so both runs time
encoding and Ray's overhead (actor start-up included), not distillation. Prints both wall times,
the throughput and the ratio, and checks that both caches hold every document.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("scifact", "stsb", "banking77", "mrpc")


def documents(count: int) -> list[str]:
    """``count`` distinct documents from the shared datasets' texts, the same on every call."""
    from embsel_mlflow.config import EvaluateJobConfig
    from embsel_mlflow.config.compose import to_job_config
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.families import family_of, load_task_data

    texts: list[str] = []
    for name in SOURCES:
        job = to_job_config(compose_config("evaluate", [f"data={name}"]), EvaluateJobConfig, "evaluate")
        data = load_task_data(job.data)
        texts += family_of(data).all_texts(data.examples)
    texts = list(dict.fromkeys(texts))
    step = 7919  # a prime: the second text of a document walks the pool in another order
    return [f"{texts[i % len(texts)]} {texts[(i * step) % len(texts)]} (#{i})" for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="static_minilm")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--cache-dir", default=None, help="keep the distilled model here between runs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("EMBSEL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    sys.path.insert(0, str(REPO_ROOT))

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.config import CacheConfig, EvaluateJobConfig
    from embsel_mlflow.config.compose import to_job_config
    from embsel_mlflow.config.embed import EmbedConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.encoding import BatchDone, encode_into_cache
    from embsel_mlflow.models.cache import EmbeddingCache, text_hash
    from tests.engines import ray_cluster

    started = time.perf_counter()
    docs = documents(args.documents)
    print(f"{len(docs)} documents built in {time.perf_counter() - started:.1f} s")
    job = to_job_config(compose_config("evaluate", [f"model={args.model}"]), EvaluateJobConfig, "evaluate")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ray-encode-") as tmp:
        cache_cfg = CacheConfig(dir=args.cache_dir or str(Path(tmp) / "cache"), max_size_gb=50)
        build_encoder(job.model, cache=EmbeddingCache(Path(cache_cfg.dir)))  # distil once, outside the timing
        for nodes in (1, 2):
            shutil.rmtree(Path(cache_cfg.dir) / "embeddings", ignore_errors=True)
            with ray_cluster(Path(tmp) / f"ray-{nodes}", workers=nodes - 1, cpus=1) as address:
                settings = EmbedConfig(
                    ray_address=address, roles=["document"], actors=nodes, batch_size=args.batch_size
                )
                per_node: dict[str, int] = {}
                first: list[float] = []
                begun = time.perf_counter()

                def seen(
                    done: BatchDone, per_node: dict = per_node, first: list = first, t0: float = begun
                ) -> None:
                    per_node[done.node] = per_node.get(done.node, 0) + done.texts
                    first.append(time.perf_counter() - t0)

                report = encode_into_cache(job.model, {"document": docs}, cache_cfg, settings, on_batch=seen)
                wall = time.perf_counter() - begun
            cache = EmbeddingCache(Path(cache_cfg.dir))
            held = cache.contains(report.model_key, "document", [text_hash(doc) for doc in docs])
            assert len(held) == len(docs), f"{nodes} node(s): {len(held)} of {len(docs)} cached"
            share = "/".join(str(count) for count in sorted(per_node.values(), reverse=True))
            rows.append((nodes, len(report.nodes), wall, report.written / wall, first[0], share))
    print(f"\n{args.model}, {len(docs)} documents, batch {args.batch_size}, one 1-CPU actor per node")
    print(f"{'nodes':>5}  {'alive':>5}  {'wall s':>8}  {'docs/s':>8}  {'1st batch s':>11}  docs per node")
    for nodes, alive, wall, rate, first_batch, share in rows:
        print(f"{nodes:>5}  {alive:>5}  {wall:>8.1f}  {rate:>8.0f}  {first_batch:>11.1f}  {share}")
    print(f"wall time 1 node / 2 nodes: {rows[0][2] / rows[1][2]:.2f}x")


if __name__ == "__main__":
    main()
