"""Peak memory of exact retrieval search: our chunked top-k vs the naive full score matrix.

300 random queries against 100k synthetic documents (dim 384, float32). Each method runs in a
fresh subprocess that builds the same seeded data, warms torch up, records its resident memory
(RSS), runs the search, and reports the high-water mark (``getrusage``) above that baseline;
a sampling thread double-checks the peak. The parent checks that both methods return the same
top-k and prints both peaks, their ratio, and PASS/FAIL for "< 1 GB extra".

    python benchmarks/bench_retrieval_memory.py [--docs 100000] [--queries 300] [--chunk-size 50000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DIM = 384
TOP_K = 100  # max of the default k_values
LIMIT_BYTES = 1 << 30
SEED = 0


def _current_rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


class _Sampler(threading.Thread):
    """Polls RSS every millisecond (a cross-check of the getrusage high-water mark)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _current_rss()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, _current_rss())
            time.sleep(0.001)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def _data(n_queries: int, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    queries = rng.standard_normal((n_queries, DIM), dtype=np.float32)
    corpus = np.empty((n_docs, DIM), dtype=np.float32)
    for start in range(0, n_docs, 10_000):  # generated in place: no float64 temporaries
        stop = min(start + 10_000, n_docs)
        corpus[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    return queries, corpus


def naive_top_k(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: the whole queries x corpus cosine matrix, then top-k."""
    import torch

    q = torch.nn.functional.normalize(torch.as_tensor(queries), p=2, dim=1)
    c = torch.nn.functional.normalize(torch.as_tensor(corpus), p=2, dim=1)
    scores, indices = torch.topk(q @ c.T, k, dim=1, largest=True, sorted=True)
    return scores.numpy(), indices.numpy()


def _worker(method: str, n_queries: int, n_docs: int, chunk_size: int, out: Path) -> None:
    import torch

    from embsel_mlflow.evaluation.search import cosine_top_k

    queries, corpus = _data(n_queries, n_docs)
    # warm up torch (thread pools, kernels) so the baseline includes its fixed cost
    small = torch.randn(64, DIM)
    torch.topk(small @ small.T, 8, dim=1)
    baseline = _current_rss()
    max_before = _max_rss()
    sampler = _Sampler()
    sampler.start()
    start = time.perf_counter()
    if method == "chunked":
        scores, indices = cosine_top_k(queries, corpus, TOP_K, corpus_chunk_size=chunk_size)
    else:
        scores, indices = naive_top_k(queries, corpus, TOP_K)
    seconds = time.perf_counter() - start
    sampled_peak = sampler.stop()
    np.save(out / f"{method}_indices.npy", indices)
    np.save(out / f"{method}_scores.npy", scores)
    report = {
        "method": method,
        "seconds": seconds,
        "baseline_bytes": baseline,
        "high_water_before_bytes": max_before,
        "extra_peak_bytes": _max_rss() - baseline,
        "sampled_extra_peak_bytes": sampled_peak - baseline,
    }
    (out / f"{method}.json").write_text(json.dumps(report))


def _run(method: str, args: argparse.Namespace, out: Path) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--out", str(out)]
    command += ["--docs", str(args.docs), "--queries", str(args.queries)]
    command += ["--chunk-size", str(args.chunk_size)]
    subprocess.run(command, check=True)
    return json.loads((out / f"{method}.json").read_text())


def same_top_k(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[bool, int]:
    """Same scores and ids, up to the order of exactly tied scores. Returns (same, rows with ties).

    float32 scores do tie at this scale; tied documents may come in either order, and at the
    k-th score either of them may be the one kept, in either search (MTEB's too).
    """
    (scores_a, ids_a), (scores_b, ids_b) = a, b
    if not np.array_equal(scores_a, scores_b):
        return False, 0
    tied_rows = 0
    for row in np.flatnonzero((ids_a != ids_b).any(axis=1)):
        tied_rows += 1
        last = scores_a[row, -1]
        for value in np.unique(scores_a[row]):
            if value == last:
                continue  # the boundary group may be cut differently
            group_a = set(ids_a[row][scores_a[row] == value])
            if group_a != set(ids_b[row][scores_b[row] == value]):
                return False, tied_rows
    return True, tied_rows


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:8.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--chunk-size", type=int, default=50_000, help="corpus_chunk_size (config default)")
    parser.add_argument("--worker", choices=["chunked", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.queries, args.docs, args.chunk_size, args.out)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        reports = {method: _run(method, args, out) for method in ("chunked", "naive")}
        idx = {m: np.load(out / f"{m}_indices.npy") for m in reports}
        scores = {m: np.load(out / f"{m}_scores.npy") for m in reports}

    matrix_bytes = args.queries * args.docs * 4
    print(
        f"{args.queries} queries x {args.docs} docs, dim {DIM}, float32, top-{TOP_K}, "
        f"corpus_chunk_size {args.chunk_size} (full score matrix alone: {_mib(matrix_bytes).strip()})"
    )
    for method, report in reports.items():
        print(
            f"  {method:8s} extra peak RSS {_mib(report['extra_peak_bytes'])} "
            f"(sampled {_mib(report['sampled_extra_peak_bytes']).strip()}), "
            f"baseline {_mib(report['baseline_bytes']).strip()}, {report['seconds']:.2f} s"
        )
    chunked, naive = reports["chunked"]["extra_peak_bytes"], reports["naive"]["extra_peak_bytes"]
    print(f"  ratio naive / chunked: {naive / max(chunked, 1):.2f}x")

    identical = np.array_equal(idx["chunked"], idx["naive"])
    same, tied_rows = same_top_k((scores["chunked"], idx["chunked"]), (scores["naive"], idx["naive"]))
    max_score_diff = float(np.abs(scores["chunked"] - scores["naive"]).max())
    print(
        f"  same top-{TOP_K}: {same} (ids identical: {identical}; queries differing only in the order "
        f"of exactly tied scores: {tied_rows}; max score difference {max_score_diff:.2e})"
    )
    fits = chunked < LIMIT_BYTES
    print(f"  chunked search < 1 GB extra: {'PASS' if fits else 'FAIL'}")
    print(f"  naive search   < 1 GB extra: {'PASS' if naive < LIMIT_BYTES else 'FAIL'}")
    ok = same and fits
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
