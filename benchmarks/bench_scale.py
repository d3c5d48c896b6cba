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


# --- the measured runs ----------------------------------------------------------------------


def _embsel_args(step: str, data: str, root: Path, out: Path, store: Path, *extra: str) -> list[str]:
    """``embsel <step> model=static_minilm data=<data>`` with the benchmark's own cache and store."""
    return [
        step,
        "model=static_minilm",
        f"data={data}",
        f"data.root={root}",
        f"model.static.dir={out / 'static'}",  # distilled once, outside the (cleared) cache
        f"cache.dir={out / 'cache'}",
        f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        f"hydra.run.dir={store / 'outputs'}",
        *extra,
    ]


def _evaluate_args(root: Path, out: Path, dtype: str) -> list[str]:
    return _embsel_args(
        "evaluate",
        "scifact",
        root,
        out,
        out / "store",
        f"model.variant.embedding_dtype={dtype}",
        "profile.link=false",  # the data profile is a one-off step of its own, not the search
        "evaluation.show_progress=false",
    )


def run_embsel(args: list[str], ok_codes: tuple[int, ...] = (0,)) -> dict:
    """One ``embsel`` command in a fresh process: its wall time, peak RSS (its own) and run id."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    start = time.perf_counter()
    command = [sys.executable, "-m", "embsel_mlflow", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN is a max)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"embsel {' '.join(args)} exited with {proc.returncode}:\n{output[-3000:]}")
    run_id = output.rsplit("(run ", 1)[-1].split(")", 1)[0] if "(run " in output else None
    return {"seconds": seconds, "peak_rss": usage.ru_maxrss * 1024, "run_id": run_id}


def run_metrics(out: Path, run_id: str) -> dict[str, float]:
    """The scores a run logged for the test split (``test/ndcg_at_10`` -> ``ndcg_at_10``)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'store' / 'mlflow.db'}")
    metrics = client.get_run(run_id).data.metrics
    return {name.removeprefix("test/"): value for name, value in metrics.items() if name.startswith("test/")}


def in_memory_scores(root: Path, out: Path) -> dict[str, float]:
    """The same task scored by one exact search over the whole corpus's cached embeddings, in memory.

    Every embedding comes from the cache the runs filled (no model): the corpus is read as one
    float32 matrix and searched in a single chunk, the plain non-streaming path.
    """
    from omegaconf import OmegaConf

    from embsel_mlflow.config import EvaluationConfig
    from embsel_mlflow.config.data import DataConfig
    from embsel_mlflow.families import build_task
    from embsel_mlflow.families.loading import load_task_data
    from embsel_mlflow.models.cache import EmbeddingCache, text_hash

    yaml = OmegaConf.load(Path(__file__).parents[1] / "conf" / "data" / "scifact.yaml")
    yaml.root = str(root)
    data = load_task_data(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), yaml)))
    cache = EmbeddingCache(out / "cache")
    (model_key,) = [p.name for p in cache.embeddings_dir.iterdir()]

    class FromCache:
        def encode(self, texts, *, role=None, show_progress=False):
            hashes = [text_hash(text) for text in texts]
            found = cache.get(model_key, role, hashes)
            return np.stack([found[digest] for digest in hashes])

    corpus_size = len(data.examples.corpus)
    cfg = EvaluationConfig(show_progress=False, corpus_chunk_size=corpus_size)  # one chunk: all in memory
    return dict(build_task(data, cfg).evaluate(FromCache()).scores)


def build_monitor_reference(shared: Path, out: Path, size: int) -> Path:
    """A Banking77-layout reference of ``size`` distractor texts (test split) and a 2,000-text window."""
    root = out / f"monitor-{size}"
    target = root / "banking77"
    target.mkdir(parents=True, exist_ok=True)
    reference = target / "test.csv"
    if not reference.is_file() or _line_count(reference) != size + 1:
        with reference.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            for i, text in enumerate(distractors(distractor_sentences(shared), size)):
                writer.writerow([text, f"intent_{i % 77}"])
        (target / "train.csv").write_bytes((shared / "banking77" / "train.csv").read_bytes())
    window = root / "window.csv"
    with window.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        for text in distractors(distractor_sentences(shared), 2_000, seed=SEED + 1):
            writer.writerow([text])
    return root


def _monitor_args(root: Path, out: Path, store: Path) -> list[str]:
    return _embsel_args("monitor", "banking77", root, out, store, f"current.paths=[{root / 'window.csv'}]")


def run_monitor(shared: Path, out: Path, sizes: list[int]) -> list[dict]:
    """``embsel monitor`` against references of each size (default monitor settings).

    Each run has a store of its own, so its window is new to it (a window already monitored is
    skipped) and the whole check runs: the reference sampled, embedded, compared.
    """
    import shutil

    rows = []
    for size in sorted(sizes):
        root = build_monitor_reference(shared, out, size)
        store = out / f"store-monitor-{size}"
        shutil.rmtree(store, ignore_errors=True)
        result = run_embsel(_monitor_args(root, out, store), ok_codes=(0, 3))  # 3: drift (expected)
        rows.append({"size": size, **result})
        print(
            f"monitor, reference {size:>9,}: peak RSS {_mib(result['peak_rss'])}, "
            f"wall {result['seconds']:.1f} s",
            flush=True,
        )
    return rows


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "embsel-scale")
    parser.add_argument("--shared", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "int8", "binary"])
    parser.add_argument(
        "--check-sizes", type=int, nargs="*", default=None, help="in-memory check (default: 2 largest)"
    )
    parser.add_argument("--monitor-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--in-memory-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_memory_worker:
        print(json.dumps(in_memory_scores(args.in_memory_worker, args.out)))
        return 0

    shared = Path(os.environ.get("EMBSEL_SHARED_DATA", args.shared))
    args.out.mkdir(parents=True, exist_ok=True)
    roots = build_corpora(shared, args.out, tuple(args.sizes))
    rows = []
    check_sizes = args.check_sizes if args.check_sizes is not None else sorted(args.sizes)[-2:]
    exact: dict[int, bool] = {}
    for size in sorted(args.sizes):
        import shutil

        shutil.rmtree(args.out / "cache", ignore_errors=True)  # cold: no embedding cached
        for dtype in args.dtypes:
            for state in ("cold", "warm") if dtype == "float32" else ("warm",):
                result = run_embsel(_evaluate_args(roots[size], args.out, dtype))
                metrics = run_metrics(args.out, result["run_id"])
                rows.append(
                    {
                        "size": size,
                        "dtype": dtype,
                        "cache": state,
                        **result,
                        "ndcg_at_10": metrics["ndcg_at_10"],
                    }
                )
                print(
                    f"{size:>9,} {dtype:8s} {state:5s} peak RSS {_mib(result['peak_rss']):>10s} "
                    f"wall {result['seconds']:7.1f} s  nDCG@10 {metrics['ndcg_at_10']:.5f}",
                    flush=True,
                )
                if dtype == "float32" and state == "warm" and size in check_sizes:
                    worker = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--out",
                            str(args.out),
                            "--in-memory-worker",
                            str(roots[size]),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
                    )
                    reference = json.loads(worker.stdout.strip().splitlines()[-1])
                    streamed = {k: v for k, v in metrics.items() if k in reference}
                    exact[size] = streamed == reference and len(streamed) == len(reference)
                    print(
                        f"{size:>9,} in-memory exact search: nDCG@10 {reference['ndcg_at_10']:.5f}; "
                        f"all {len(reference)} scores equal: {exact[size]}",
                        flush=True,
                    )
    monitor = run_monitor(shared, args.out, args.monitor_sizes) if args.monitor_sizes else []
    (args.out / "results.json").write_text(json.dumps({"evaluate": rows, "monitor": monitor}, indent=2))
    status = _report(rows, exact)
    if len(monitor) >= 2:
        ratio = monitor[-1]["peak_rss"] / monitor[-2]["peak_rss"]
        print(f"monitor peak RSS {monitor[-1]['size']:,} / {monitor[-2]['size']:,} references: {ratio:.2f}x")
    return status


def _report(rows: list[dict], exact: dict[int, bool]) -> int:
    by = {(r["size"], r["dtype"], r["cache"]): r for r in rows}
    sizes = sorted({r["size"] for r in rows})
    ok = all(exact.values()) if exact else True
    print("\n| corpus | vectors | cache | peak RSS | wall | nDCG@10 |")
    print("|---:|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['size']:,} | {r['dtype']} | {r['cache']} | {_mib(r['peak_rss'])} | "
            f"{r['seconds']:.1f} s | {r['ndcg_at_10']:.5f} |"
        )
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        print(f"\nratios {large:,} / {small:,}:")
        for (size, dtype, state), r in by.items():
            if size != large or (small, dtype, state) not in by:
                continue
            base = by[(small, dtype, state)]
            rss, wall = r["peak_rss"] / base["peak_rss"], r["seconds"] / base["seconds"]
            bar = dtype == "float32"
            verdict = f"  (bar: RSS <= {RSS_BAR}x, wall <= {WALL_BAR}x: " + (
                "PASS)" if rss <= RSS_BAR and wall <= WALL_BAR else "FAIL)"
            )
            print(f"  {dtype:8s} {state:5s} peak RSS {rss:.2f}x  wall {wall:.2f}x{verdict if bar else ''}")
            if bar:
                ok = ok and rss <= RSS_BAR and wall <= WALL_BAR
    for size, same in exact.items():
        print(f"  {size:,}: streamed scores equal the in-memory exact search: {'PASS' if same else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
