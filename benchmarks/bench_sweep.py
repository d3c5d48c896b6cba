"""Sweep overhead and parallel speed-up: `embsel evaluate -m` as a user runs it.

    python benchmarks/bench_sweep.py                      # minilm on STS-B test, 4 max_seq_length values
    python benchmarks/bench_sweep.py --repeats 2
    python benchmarks/bench_sweep.py --model tiny         # tiny model on the 4 demo sets (start-up only)

The default sweep does real work: the offline MiniLM encodes the 2,758 STS-B test sentences in each
of 4 jobs (``model.max_seq_length=64,96,128,256``, as an Optuna example would search), with the
embedding cache off so that no job reuses another's vectors. Each sweep runs in a fresh process
and a fresh sqlite store: sequentially (Hydra's basic launcher, jobs in one process) and with the
joblib launcher and 2 workers, alternating so machine load drifts affect both alike. joblib's loky
workers get ``OMP_NUM_THREADS = cores // workers``, so torch uses cores / workers threads in each
worker (no oversubscription; the ``hardware.torch_threads`` tag of every child shows it).

Prints, from the sequential sweep's own MLflow records:

- process start: launch to the parent run's start (interpreter, imports, compose, preflight);
- per job: a child run's wall time minus its model compute (``eval_seconds``: encode + metrics),
  plus the gap to the next job (Hydra composes the job, the callback opens the child): loading,
  composition and tracking;
- sweep end: the last child to process exit (jobs table, parent close);

then each sweep's wall time, CPU time (user + sys of the process tree) and load average, and the
ratio parallel / sequential wall time. Goal: <= 0.75. The CPU figures bound what parallelism can
win: when the sequential sweep already keeps every core busy (CPU time / wall ~ cores), running
the same CPU work side by side cannot finish sooner than its CPU time / cores (jobs on one torch
thread each can spend less CPU than on all cores, and then beat it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.75
DEMO_SETS = ["demo_sts", "demo_pair_classification", "demo_classification", "demo_clustering"]
SEQ_LENGTHS = ["64", "96", "128", "256"]


def sweep_overrides(name: str, tmp: Path, limit: int | None) -> list[str]:
    """The 4 jobs: minilm on STS-B test at 4 max_seq_length values, or the tiny model on 4 demo sets."""
    if name == "minilm":
        sample = [f"data.limit={limit}"] if limit else []
        shared = Path(os.environ.get("EMBSEL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()
        return [
            "model=minilm",
            f"model.max_seq_length={','.join(SEQ_LENGTHS)}",
            "data=stsb",
            f"data.root={shared}",
            "cache.enabled=false",
            *sample,
        ]
    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_models import build_tiny_bert

    path = build_tiny_bert(tmp / "tiny_bert")
    model = ["model=transformers_mean", f"model.name_or_path={path}", "model.name=tiny"]
    return [f"data={','.join(DEMO_SETS)}", *model]


def run_sweep(workdir: Path, overrides: list[str], workers: int | None) -> dict[str, float]:
    """Launch time, wall and CPU seconds, load average of one sweep in a fresh process and store."""
    workdir.mkdir(parents=True)
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"] if workers else []
    command = [sys.executable, "-m", "embsel_mlflow", "evaluate", "-m", *launcher, *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.time()
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.time() - launched
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(command)}):\n{proc.stderr[-3000:]}")
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"launched": launched, "wall": wall, "cpu": cpu, "load": (load_before + os.getloadavg()[0]) / 2}


def torch_threads(workdir: Path) -> list[str]:
    """The ``hardware.torch_threads`` tag of every child run (threads torch used in that job)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return sorted(r.data.tags.get("hardware.torch_threads", "?") for r in children)


def breakdown(workdir: Path, launched: float, wall: float) -> dict[str, float]:
    """Process start, per-job overhead and compute, sweep end, from the sweep's MLflow runs."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    (parent,) = [r for r in runs if r.data.tags.get("embsel.sweep") == "parent"]
    children = sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.start_time
    )
    compute = [c.data.metrics["eval_seconds"] for c in children]
    in_job = [
        (c.info.end_time - c.info.start_time) / 1000 - s for c, s in zip(children, compute, strict=True)
    ]
    gaps = [(b.info.start_time - a.info.end_time) / 1000 for a, b in itertools.pairwise(children)]
    return {
        "process start (s)": parent.info.start_time / 1000 - launched,
        "per-job overhead (s)": statistics.mean(in_job) + (statistics.mean(gaps) if gaps else 0.0),
        "  of which in the job: load, log (s)": statistics.mean(in_job),
        "  of which between jobs: compose, open child (s)": statistics.mean(gaps) if gaps else 0.0,
        "per-job model compute (s)": statistics.mean(compute),
        "sweep end (s)": launched + wall - children[-1].info.end_time / 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "minilm"], default="minilm")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--limit", type=int, default=None, help="STS-B test pairs per job (default: all 1379)"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        overrides = [*sweep_overrides(args.model, tmp, args.limit), "evaluation.show_progress=false"]
        sweeps: dict[str, list[dict[str, float]]] = {"sequential": [], "parallel": []}
        threads: dict[str, list[str]] = {}
        overheads: list[dict[str, float]] = []
        for repeat in range(args.repeats):
            for name, workers in (("sequential", None), ("parallel", args.workers)):
                workdir = tmp / f"{name}-{repeat}"
                sweep = run_sweep(workdir, overrides, workers)
                sweeps[name].append(sweep)
                print(f"  {workdir.name}: {sweep['wall']:.1f} s", file=sys.stderr, flush=True)
                threads[name] = torch_threads(workdir)
                if workers is None:
                    overheads.append(breakdown(workdir, sweep["launched"], sweep["wall"]))

    jobs = SEQ_LENGTHS if args.model == "minilm" else DEMO_SETS
    pairs = args.limit or "all"
    what = (
        f"minilm on STS-B test ({pairs} pairs), max_seq_length="
        if args.model == "minilm"
        else "tiny model on "
    )
    print(f"model={args.model} jobs={len(jobs)} ({what}{','.join(jobs)}) cpus={cores}")
    print(f"repeats={args.repeats}; sequential = basic launcher, parallel = joblib, {args.workers} workers")
    print("sequential sweep, per job (median over repeats):")
    for key in overheads[0]:
        print(f"  {key:<48} {statistics.median(o[key] for o in overheads):7.2f}")
    for name in ("sequential", "parallel"):
        runs = sweeps[name]
        shown = "; ".join(
            f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU ({r['cpu'] / r['wall']:.2f} cores busy), "
            f"load {r['load']:.1f}"
            for r in runs
        )
        print(f"{name:>10}: {shown}; torch threads per job: {','.join(threads[name])}")
    seq, par = (statistics.median(r["wall"] for r in sweeps[k]) for k in ("sequential", "parallel"))
    seq_cpu = statistics.median(r["cpu"] for r in sweeps["sequential"])
    ratio = par / seq
    verdict = "PASS" if ratio <= GOAL else "FAIL"
    print(f"     ratio: {ratio:.3f} (parallel/sequential) -> {verdict} (goal <= {GOAL})")
    # the same CPU work spread over at most `cores`; parallel jobs on fewer threads can spend less
    print(
        f"     bound: the same CPU work in parallel needs >= seq CPU / cores = {seq_cpu / cores:.1f} s "
        f"-> ratio >= {seq_cpu / cores / seq:.2f} (lower only if parallel jobs spend less CPU)"
    )


if __name__ == "__main__":
    main()
