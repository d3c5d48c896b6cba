"""`embsel select` with `select.executor=ray` on a real local Ray cluster (a head and one worker).

The bar: the same leaderboard as the same selection run sequentially (scores and intervals to
1e-12, the same verdicts and p-values), each child logged on the node that ran it, with that
node's hardware. Tiny models and the bundled demo data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.test_select import FAST, _runs, _select, _store, _tiny_candidates

# a cluster start and two selections: minutes on a 2-core machine
pytestmark = pytest.mark.slow
DATASETS = "datasets=[demo_sts,demo_retrieval]"


def _leaderboard(cwd: Path) -> tuple[pd.DataFrame, list]:
    runs = _runs(cwd)
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    frame = pd.read_csv(_store(cwd).download_artifacts(parent.info.run_id, "leaderboard.csv"))
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return frame.set_index("candidate"), children


@pytest.fixture(scope="module")
def both(
    tiny_bert_dir: Path, tiny_st_dir: Path, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, pd.DataFrame, list]]:
    """The same selection, sequential and on Ray (each in its own store and cache)."""
    found = {}
    executors = {"sequential": [], "ray": ["select.executor=ray", f"select.ray.address={ray_address}"]}
    for executor, extra in executors.items():
        cwd = tmp_path_factory.mktemp(executor)
        args = [*_tiny_candidates(tiny_bert_dir, tiny_st_dir), DATASETS, *FAST, f"cache.dir={cwd / 'cache'}"]
        # a fraction of a CPU for one candidate: its tasks reserve what it declares
        args.append("candidates.e5_base.resources.num_cpus=0.5")
        code = _select([*args, *extra], cwd)
        found[executor] = (code, *_leaderboard(cwd))
    return found


def test_ray_gives_the_sequential_leaderboard(both) -> None:
    (code_seq, seq, _), (code_ray, on_ray, _) = both["sequential"], both["ray"]
    assert code_seq == code_ray == 0
    assert list(on_ray.index) == list(seq.index)  # the same order: the same ranking
    for dataset in ("demo_sts", "demo_retrieval", "mean"):
        for column in (dataset, f"{dataset} ci_low", f"{dataset} ci_high", f"{dataset} p"):
            assert on_ray[column].to_numpy() == pytest.approx(seq[column].to_numpy(), abs=1e-12, nan_ok=True)
        assert list(on_ray[f"{dataset} vs best"]) == list(seq[f"{dataset} vs best"])


def test_each_child_ran_on_a_ray_node_and_records_its_hardware(both, ray_address: str) -> None:
    _, _, children = both["ray"]
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    nodes = set()
    for child in children:
        tags = child.data.tags
        node = ("hardware.hostname", "hardware.cpu_model", "hardware.cpus_available", "hardware.ray_node_id")
        for key in node:
            assert tags.get(key), (child.info.run_name, key)
        nodes.add(tags["hardware.ray_node_id"])
        # what the task reserved: e5_base declares half a CPU, the other the select.ray default of 1
        cpus = "0.5" if tags["embsel.candidate"] == "e5_base" else "1"
        assert f"CPU={cpus}" in tags["hardware.ray_resources"].split(","), tags["hardware.ray_resources"]
        assert child.data.metrics["efficiency/texts_per_second"] > 0
    import ray

    ray.init(address=ray_address, log_to_driver=False)
    try:
        alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    finally:
        ray.shutdown()
    assert nodes <= alive  # a real node of the cluster ran each pair


def test_sequential_children_record_the_host_without_a_ray_node(both) -> None:
    _, _, children = both["sequential"]
    for child in children:
        assert child.data.tags["hardware.hostname"] and child.data.tags["hardware.cpu_model"]
        assert "hardware.ray_node_id" not in child.data.tags


def test_a_candidate_asking_more_than_the_cluster_has_is_one_line(
    tiny_bert_dir: Path, tiny_st_dir: Path, ray_address: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [*_tiny_candidates(tiny_bert_dir, tiny_st_dir), "datasets=[demo_sts]", *FAST]
    args += ["select.executor=ray", f"select.ray.address={ray_address}"]
    args.append("candidates.e5_base.resources.num_gpus=1")  # the cluster has none
    assert _select(args, tmp_path) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "candidates.e5_base.resources.num_gpus" in errors[0], errors
    (run,) = _runs(tmp_path)
    assert run.info.status == "FAILED" and run.data.tags["error"] in errors[0]
