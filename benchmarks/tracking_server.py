"""Eight concurrent writers against a tracking server: PostgreSQL-backed vs sqlite-backed.

    python benchmarks/tracking_server.py                 # one sweep on each, side by side
    python benchmarks/tracking_server.py --repeats 2 --jobs 8

Each round starts a fresh `mlflow server` (``--artifacts-destination`` in a temp dir) over a fresh
store, one over a sqlite file and one over a PostgreSQL database (Debian's `postgresql` started in
a temp dir, as the tests do), and runs the same sweep against each, alternating which goes first:
``embsel evaluate -m hydra/launcher=joblib hydra.launcher.n_jobs=8`` over 8 jobs of a tiny BERT on
demo_sts (``model.batch_size`` swept, so every job logs the same metrics). Prints per backend the
sweep's wall time, the FINISHED children and the children with every metric a reference run logs,
then the ratio of the median wall times (PostgreSQL / sqlite).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def _sweep(url: str, model_dir: Path, jobs: int, cwd: Path, experiment: str) -> tuple[float, int]:
    """Run the sweep (or, for ``jobs == 0``, one plain reference run); its wall time and exit code."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
    args = [
        "tracking=server", f"tracking.uri={url}", f"tracking.experiment={experiment}",
        "model=transformers_mean", f"model.name_or_path={model_dir}", "model.name=tiny", "data=demo_sts",
        "evaluation.show_progress=false", "tracking.log_per_item=false",
    ]  # fmt: skip
    if jobs:
        sizes = ",".join(str(2 + i) for i in range(jobs))
        sweep = ["-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"model.batch_size={sizes}"]
        args = [*sweep, *args]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "embsel_mlflow", "evaluate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        print(proc.stderr[-2000:], file=sys.stderr)
    return time.monotonic() - started, proc.returncode


def _complete(url: str) -> tuple[int, int, int]:
    """Children, FINISHED children, children with every metric of the reference run."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    (reference,) = client.search_runs([client.get_experiment_by_name("reference").experiment_id])
    expected = set(reference.data.metrics)
    runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    finished = [c for c in children if c.info.status == "FINISHED"]
    return len(children), len(finished), sum(set(c.data.metrics) == expected for c in children)


def _round(backend: str, backend_uri: str, model_dir: Path, jobs: int, tmp: Path) -> dict:
    from tests.mlflow_server import serve_mlflow

    server_dir = tmp / f"{backend}-server"
    server_dir.mkdir()
    with serve_mlflow(server_dir, backend_uri=backend_uri) as url:
        _sweep(url, model_dir, 0, server_dir, "reference")
        wall, code = _sweep(url, model_dir, jobs, server_dir, "sweep")
        children, finished, complete = _complete(url)
    return {"wall": wall, "code": code, "children": children, "finished": finished, "complete": complete}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    options = parser.parse_args()

    import pytest

    from tests.engines import fresh_database, serve_postgres
    from tests.tiny_models import build_tiny_bert

    results: dict[str, list[dict]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as name:
        tmp = Path(name)
        model_dir = build_tiny_bert(tmp / "tiny_bert")
        try:
            pg_context = serve_postgres(tmp / "pg")
            pg_uri = pg_context.__enter__()
        except pytest.skip.Exception as exc:
            sys.exit(f"PostgreSQL is needed: {exc}")
        try:
            for repeat in range(options.repeats):
                order = ["sqlite", "postgresql"] if repeat % 2 == 0 else ["postgresql", "sqlite"]
                for backend in order:
                    round_dir = tmp / f"r{repeat}"
                    round_dir.mkdir(exist_ok=True)
                    uri = (
                        f"sqlite:///{round_dir / 'server.db'}"
                        if backend == "sqlite"
                        else fresh_database(pg_uri, f"bench_{repeat}")
                    )
                    result = _round(backend, uri, model_dir, options.jobs, round_dir)
                    results[backend].append(result)
                    print(f"round {repeat + 1} {backend}: {result}", flush=True)
        finally:
            pg_context.__exit__(None, None, None)

    print(f"\n{options.jobs} concurrent jobs (joblib), tiny BERT on demo_sts, {os.cpu_count()} cores")
    print("| server backend | sweep wall time | children FINISHED | with every metric | exit codes |")
    print("|---|---|---|---|---|")
    medians = {}
    for backend, rounds in results.items():
        medians[backend] = statistics.median(r["wall"] for r in rounds)
        walls = ", ".join(f"{r['wall']:.1f} s" for r in rounds)
        finished = ", ".join(f"{r['finished']}/{options.jobs}" for r in rounds)
        complete = ", ".join(f"{r['complete']}/{options.jobs}" for r in rounds)
        codes = ", ".join(str(r["code"]) for r in rounds)
        print(f"| {backend} | {walls} | {finished} | {complete} | {codes} |")
    print(f"\nratio PostgreSQL / sqlite (median wall time): {medians['postgresql'] / medians['sqlite']:.3f}")


if __name__ == "__main__":
    main()
