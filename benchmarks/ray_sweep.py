"""An 8-job `embsel evaluate -m` sweep: basic launcher vs Ray on 1 node vs Ray on 2 nodes.

    python benchmarks/ray_sweep.py                 # about 5 minutes on a 2-core machine
    python benchmarks/ray_sweep.py --repeat 2      # the best of 2 per set-up

Tiny jobs (a tiny BERT built locally, the four demo datasets x two batch sizes), so the numbers
are dominated by what a launcher costs, not by encoding. Each set-up runs the same command line
into a fresh sqlite store; the Ray ones on a local cluster (`tests.engines.ray_cluster`, 1 CPU a
node, `num_cpus=1` a job), started before the clock starts:

    embsel evaluate -m data=demo_sts,demo_pair_classification,demo_classification,demo_clustering \\
        model.batch_size=4,8 model=transformers_mean model.name_or_path=TINY model.name=tiny \\
        evaluation.show_progress=false tracking.log_per_item=false tracking.uri=sqlite:///...
    # + hydra/launcher=ray hydra.launcher.ray.init.address=127.0.0.1:PORT

Prints each wall time, the mean child-run time, the time per job spent outside the child runs,
the 2-node / 1-node ratio, and the Ray overhead per job: (Ray on 1 node - basic) / 8, both
running one job at a time. On a loaded machine the last is within the noise: compare the
"outside runs" column instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
JOBS = [
    "data=demo_sts,demo_pair_classification,demo_classification,demo_clustering",
    "model.batch_size=4,8",
]
QUIET = ["evaluation.show_progress=false", "tracking.log_per_item=false"]


def _sweep(tmp: Path, name: str, tiny: Path, launcher: list[str]) -> tuple[float, float]:
    """Wall seconds of one sweep and its children's mean run seconds (from the store)."""
    from mlflow import MlflowClient

    work = tmp / name
    work.mkdir()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    model = ["model=transformers_mean", f"model.name_or_path={tiny}", "model.name=tiny"]
    command = [sys.executable, "-m", "embsel_mlflow", "evaluate", "-m", *launcher, *JOBS, *model, *QUIET]
    start = time.perf_counter()
    proc = subprocess.run([*command, f"tracking.uri={uri}"], cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 8 and {r.info.status for r in children} == {"FINISHED"}, name
    return wall, sum((r.info.end_time - r.info.start_time) / 1000 for r in children) / len(children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per set-up; the fastest counts")
    args = parser.parse_args()
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_COLOR_PREFIX": "0"})
    # the cluster's workers (started from this environment) import this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(REPO_ROOT))
    from tests.engines import ray_cluster
    from tests.tiny_models import build_tiny_bert

    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ray-sweep-bench-") as name:
        tmp = Path(name)
        tiny = build_tiny_bert(tmp / "tiny")

        def best(label: str, launcher: list[str]) -> None:
            slug = label.split("(")[0].replace(" ", "")  # a folder name that is also a plain override value
            runs = [_sweep(tmp, f"{slug}-{i}", tiny, launcher) for i in range(args.repeat)]
            results[label] = min(runs)
            wall, child = results[label]
            # outside the child runs: CLI start, the parent, dispatch (the launcher's cost, per job)
            print(
                f"{label:<16} wall {wall:7.1f} s   mean child run {child:5.2f} s   "
                f"outside runs {wall / 8 - child:5.2f} s/job"
            )

        best("basic", [])
        for nodes in (1, 2):  # a head, plus a worker node for 2; 1 CPU each
            with ray_cluster(tmp / f"cluster{nodes}", workers=nodes - 1) as address:
                best(
                    f"ray {nodes} node(s)",
                    ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}"],
                )
    basic, one, two = results["basic"][0], results["ray 1 node(s)"][0], results["ray 2 node(s)"][0]
    print(
        f"\n8 jobs, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
        f"ray 2 nodes / 1 node wall: {two / one:.2f}   ray 1 node / basic wall: {one / basic:.2f}\n"
        f"Ray overhead per job (1 node vs basic, both one job at a time): {(one - basic) / 8:.2f} s"
    )


if __name__ == "__main__":
    main()
