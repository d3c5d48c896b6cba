"""Sweep overhead and parallel speed-up: `embsel evaluate -m` as a user runs it.

    python benchmarks/bench_sweep.py                       # tiny model, the 4 demo sets
    python benchmarks/bench_sweep.py --model minilm --repeats 3

Runs the same 4-job sweep twice per repeat, in fresh processes and fresh sqlite stores, on this
machine: sequentially (Hydra's basic launcher, jobs in one process) and with the joblib launcher
and 2 workers, alternating so machine load drifts affect both alike. Prints, from the sequential
sweep's own MLflow records:

- process start: launch to the parent run's start (interpreter, imports, compose, preflight);
- per job: a child run's wall time minus its model compute (``eval_seconds``: encode + metrics),
  plus the gap to the next job (Hydra composes the job, the callback opens the child): loading,
  composition and tracking;
- sweep end: the last child to process exit (jobs table, parent close);

and the ratio parallel / sequential wall time. Goal: <= 0.75.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.75
DATASETS = ["demo_sts", "demo_pair_classification", "demo_classification", "demo_clustering"]


def model_overrides(name: str, tmp: Path) -> list[str]:
    if name == "minilm":
        return ["model=minilm"]
    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_models import build_tiny_bert

    path = build_tiny_bert(tmp / "tiny_bert")
    return ["model=transformers_mean", f"model.name_or_path={path}", "model.name=tiny"]


def run_sweep(workdir: Path, overrides: list[str], workers: int | None) -> tuple[float, float]:
    """(launch time, wall seconds) of one sweep in a fresh process and a fresh store."""
    workdir.mkdir(parents=True)
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"] if workers else []
    command = [sys.executable, "-m", "embsel_mlflow", "evaluate", "-m", *launcher, *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    launched = time.time()
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.time() - launched
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({' '.join(command)}):\n{proc.stderr[-3000:]}")
    return launched, wall


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
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        overrides = [
            f"data={','.join(DATASETS)}",
            *model_overrides(args.model, tmp),
            "evaluation.show_progress=false",
        ]
        walls: dict[str, list[float]] = {"sequential": [], "parallel": []}
        overheads: list[dict[str, float]] = []
        for repeat in range(args.repeats):
            for name, workers in (("sequential", None), ("parallel", args.workers)):
                workdir = tmp / f"{name}-{repeat}"
                launched, wall = run_sweep(workdir, overrides, workers)
                walls[name].append(wall)
                if workers is None:
                    overheads.append(breakdown(workdir, launched, wall))

    print(f"model={args.model} jobs={len(DATASETS)} ({', '.join(DATASETS)}) cpus={os.cpu_count()}")
    print(
        f"repeats={args.repeats}; sequential = basic launcher, parallel = joblib with {args.workers} workers"
    )
    print("sequential sweep, per job (median over repeats):")
    for key in overheads[0]:
        print(f"  {key:<48} {statistics.median(o[key] for o in overheads):7.2f}")
    seq, par = (statistics.median(walls[k]) for k in ("sequential", "parallel"))
    for name in ("sequential", "parallel"):
        runs = ", ".join(f"{w:.1f}" for w in walls[name])
        print(f"{name:>10}: {statistics.median(walls[name]):7.2f} s wall (runs: {runs})")
    ratio = par / seq
    verdict = "PASS" if ratio <= GOAL else "FAIL"
    print(f"     ratio: {ratio:.3f} (parallel/sequential) -> {verdict} (goal <= {GOAL})")


if __name__ == "__main__":
    main()
