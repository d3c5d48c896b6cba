"""model.variant.backend=onnx (the [onnx] extra): parity with torch, int8 dynamic, cache, champion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embsel_mlflow.config import ModelConfig, VariantConfig

EXTRA = "backend=onnx needs the [onnx] extra: pip install 'embsel-mlflow[onnx]'"
for module in ("onnxruntime", "onnx", "onnxscript"):
    pytest.importorskip(module, reason=EXTRA)


# one batch of very different lengths: padding must be masked in the exported graph as in torch
TEXTS = [
    "rain",
    "A man is playing a guitar on the stage while the crowd sings along with every word.",
    "The committee approved the budget.",
    "A short one.",
]


def _cfg(path: Path, **variant: str) -> ModelConfig:
    return ModelConfig(name="tiny", name_or_path=str(path), variant=VariantConfig(**variant))


@pytest.fixture(scope="module")
def torch_reference(tiny_st_dir: Path) -> np.ndarray:
    from embsel_mlflow.candidates.base import build_encoder

    return build_encoder(_cfg(tiny_st_dir)).encode(TEXTS)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the module: each export is made once and reused."""
    return tmp_path_factory.mktemp("onnx_cache")


def test_onnx_fp32_equals_torch_and_the_export_is_cached(
    tiny_st_dir: Path, cache_dir: Path, torch_reference: np.ndarray
) -> None:
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.models.cache import EmbeddingCache

    cache = EmbeddingCache(cache_dir)
    model = build_encoder(_cfg(tiny_st_dir, backend="onnx"), cache=cache)
    runtime = model.identity["variant"]["runtime"]
    assert runtime["backend"] == "onnx" and runtime["precision"] == "float32"
    assert runtime["providers"] == ["CPUExecutionProvider"]
    encoder = model.inner  # not the embedding cache: every call below runs the ONNX session
    embeddings = encoder.encode(TEXTS, batch_size=len(TEXTS))  # one padded batch
    assert embeddings.shape == torch_reference.shape
    assert np.abs(embeddings - torch_reference).max() < 1e-4
    singles = np.vstack([encoder.encode([text]) for text in TEXTS])  # other batch and sequence sizes
    assert np.abs(singles - torch_reference).max() < 1e-4
    exports = list((cache_dir / "models" / "onnx").glob("*/model.onnx"))
    assert len(exports) == 1 and model.disk_size_bytes == runtime["ir_bytes"] > 0
    written = exports[0].stat().st_mtime_ns
    again = build_encoder(_cfg(tiny_st_dir, backend="onnx"), cache=cache)  # reuses the export
    assert exports[0].stat().st_mtime_ns == written
    assert again.identity == model.identity
    assert not list((cache_dir / "models" / "onnx").glob("embsel-onnx-*"))  # no leftovers


def test_onnx_encodes_with_torch_on_one_thread(tiny_st_dir: Path, cache_dir: Path) -> None:
    """ORT's pool does the work: torch (pooling only) is held to one thread, then restored."""
    import torch

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.models.cache import EmbeddingCache

    encoder = build_encoder(_cfg(tiny_st_dir, backend="onnx"), cache=EmbeddingCache(cache_dir)).inner
    transformer = encoder.model[0]
    session_forward = transformer.model.forward
    seen: list[int] = []

    def forward(**features):
        seen.append(torch.get_num_threads())
        return session_forward(**features)

    transformer.model.forward = forward
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        encoder.encode(TEXTS, batch_size=2)
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_onnx_int8_dynamic_is_close_and_smaller(
    tiny_st_dir: Path, cache_dir: Path, torch_reference: np.ndarray
) -> None:
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.models.cache import EmbeddingCache

    cache = EmbeddingCache(cache_dir)
    fp32 = build_encoder(_cfg(tiny_st_dir, backend="onnx"), cache=cache)
    int8 = build_encoder(_cfg(tiny_st_dir, backend="onnx", quantization="int8_dynamic"), cache=cache)
    runtime = int8.identity["variant"]["runtime"]
    assert runtime["quantization"] == "int8_dynamic" and runtime["precision"] == "float32"
    embeddings = int8.inner.encode(TEXTS)
    assert embeddings.shape == torch_reference.shape and embeddings.dtype == np.float32
    assert not np.array_equal(embeddings, torch_reference)  # int8 really ran
    cosine = np.sum(embeddings * torch_reference, axis=1) / (
        np.linalg.norm(embeddings, axis=1) * np.linalg.norm(torch_reference, axis=1)
    )
    assert cosine.min() > 0.95
    assert int8.disk_size_bytes < fp32.disk_size_bytes  # int8 MatMul weights


def test_onnx_champion_serves_its_export(tiny_st_dir: Path, tmp_path: Path) -> None:
    """Registered, then loaded with MLflow's pyfunc: it runs the saved int8 graph, not torch.

    In this process: the pyfunc file builds its own session from the logged files (the
    fresh-process round trip of a champion is tests/test_variants.py's champion test).
    """
    import json

    import mlflow
    from mlflow import MlflowClient

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.selection.champion import register_champion

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("champions")).info.run_id
    cfg = _cfg(tiny_st_dir, backend="onnx", quantization="int8_dynamic")
    model = build_encoder(cfg)  # no cache: the export lives in a temporary directory
    expected = model.encode(TEXTS)
    register_champion(client, run_id, model, "tiny/onnx-int8dyn", "champion_onnx", "champion", cfg=cfg)
    version = client.get_model_version_by_alias("champion_onnx", "champion")
    assert version.run_id == run_id
    served = mlflow.pyfunc.load_model(client.download_artifacts(run_id, "champion"))
    loaded = np.asarray(served.predict(TEXTS), dtype=np.float32)
    assert np.abs(loaded - expected).max() < 1e-6  # the same int8 graph, not a torch re-run
    settings = json.loads(
        Path(client.download_artifacts(run_id, "champion/artifacts/settings.json")).read_text()
    )
    assert settings["variant"]["backend"] == "onnx"
    assert settings["variant"]["quantization"] == "int8_dynamic"
    requirements = Path(client.download_artifacts(run_id, "champion/requirements.txt")).read_text()
    assert "onnxruntime==" in requirements
