"""Cheaper variants: naming and expansion, refusals, int8/binary scoring, variants in select."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from embsel_mlflow.config import (
    Backend,
    CalibrationConfig,
    DataConfig,
    EmbeddingDtype,
    ModelConfig,
    ModelKind,
    Precision,
    Quantization,
    VariantConfig,
)
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.evaluation.quantized_search import QuantizedTopK, hamming_distances
from embsel_mlflow.models.stored_embeddings import EmbeddingFormat
from embsel_mlflow.models.variants import expand_variants, variant_name


def _cfg(path: str = "unused", **variant) -> ModelConfig:
    precision = variant.pop("precision", "fp32")
    return ModelConfig(name="tiny", name_or_path=path, precision=precision, variant=VariantConfig(**variant))


# --- names and expansion -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({}, "fp32"),
        ({"precision": "bf16"}, "bf16"),
        ({"backend": "openvino"}, "openvino"),
        ({"backend": "openvino", "quantization": "int8_static"}, "openvino-int8"),
        ({"quantization": "int8_dynamic"}, "int8dyn"),
        ({"backend": "onnx"}, "onnx"),
        ({"backend": "onnx", "quantization": "int8_dynamic"}, "onnx-int8dyn"),
        ({"embedding_dtype": "int8"}, "int8-emb"),
        ({"embedding_dtype": "binary"}, "binary-emb"),
        ({"truncate_dim": 128}, "trunc128"),
        ({"precision": "bf16", "embedding_dtype": "int8"}, "bf16-int8-emb"),
    ],
)
def test_variant_names(settings: dict, name: str) -> None:
    assert variant_name(_cfg(**settings)) == name


def test_expansion_one_axis_at_a_time_with_baselines() -> None:
    lsa = ModelConfig(name="lsa", name_or_path="lsa", kind=ModelKind.lsa)
    axes = {
        "precision": ["fp32", "bf16"],
        "backend": ["torch", "openvino"],
        "quantization": ["none", "int8_static"],
        "embedding_dtype": ["float32", "int8", "binary"],
        "truncate_dim": [None, 256],
    }
    expanded, baselines = expand_variants({"minilm": _cfg(), "lsa": lsa}, axes)
    assert list(expanded) == [
        "minilm/fp32",
        "minilm/bf16",
        "minilm/openvino",
        "minilm/openvino-bf16",  # OpenVINO variants run at each listed precision too
        "minilm/openvino-int8",
        "minilm/openvino-int8-bf16",
        "minilm/int8-emb",
        "minilm/binary-emb",
        "minilm/trunc256",
        "lsa",  # other kinds have no variants and stay as they are
    ]
    assert set(baselines.values()) == {"minilm/fp32"} and "lsa" not in baselines
    assert expanded["minilm/openvino-int8"].variant.calibration == CalibrationConfig()
    int8_bf16 = expanded["minilm/openvino-int8-bf16"]
    assert (int8_bf16.precision, int8_bf16.variant.backend, int8_bf16.variant.quantization) == (
        Precision.bf16,
        Backend.openvino,
        Quantization.int8_static,
    )
    # listed alone, static int8 means OpenVINO: at each listed precision as well
    alone, _ = expand_variants({"minilm": _cfg()}, {"precision": ["bf16"], "quantization": ["int8_static"]})
    assert list(alone) == ["minilm/fp32", "minilm/bf16", "minilm/openvino-int8", "minilm/openvino-int8-bf16"]
    assert expand_variants({"minilm": _cfg()}, {}) == ({"minilm": _cfg()}, {})


@pytest.mark.parametrize(
    ("axes", "message"),
    [({"colour": ["red"]}, "unknown axis colour"), ({"precision": ["fp8"]}, "'fp8' is not one of fp32")],
)
def test_expansion_refuses_unknown_axes_and_values(axes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand_variants({"minilm": _cfg()}, axes)


# --- refusals, before anything is loaded ----------------------------------------------------


def _build(cfg: ModelConfig, datasets: list[DataConfig] | None = None):
    from embsel_mlflow.candidates.base import build_encoder

    return build_encoder(cfg, calibration_data=datasets or [])


def test_missing_onnx_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    # None in sys.modules is how Python marks a module absent: `import onnxruntime` fails, as
    # on a machine without the extra
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        ConfigError,
        match=r"^model\.variant\.backend=onnx needs onnxruntime.*, which is not installed: "
        r'pip install "embsel-mlflow\[onnx\]"$',
    ):
        _build(_cfg(backend="onnx"))


def test_missing_openvino_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name)
    )
    with pytest.raises(
        ConfigError, match=r"needs openvino, which is not installed: pip install .*\[openvino\]"
    ):
        _build(_cfg(backend="openvino"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"quantization": "int8_static"}, "int8_static needs model.variant.backend=openvino"),
        ({"quantization": "int8_dynamic", "precision": "bf16"}, "int8_dynamic quantizes fp32 weights"),
        ({"backend": "onnx", "quantization": "int8_static"}, "int8_static is not offered on backend=onnx"),
        ({"backend": "onnx", "precision": "bf16"}, "backend=onnx runs its fp32 export"),
    ],
)
def test_invalid_combinations_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _build(_cfg(**settings))


def test_backends_with_their_own_threads_hold_torch_to_one() -> None:
    """OpenVINO/ONNX encode with torch on one thread (it only pools); torch keeps its threads."""
    import torch

    from embsel_mlflow.models.exported_forward import torch_threads_for

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = {}
        for backend in ("torch", None, "openvino", "onnx"):
            with torch_threads_for(backend):
                seen[backend] = torch.get_num_threads()
        with pytest.raises(RuntimeError, match="boom"), torch_threads_for("openvino"):
            raise RuntimeError("boom")
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    assert seen == {"torch": 2, None: 2, "openvino": 1, "onnx": 1}
    assert after == 2


def test_variants_of_other_kinds_are_refused() -> None:
    cfg = ModelConfig(name="lsa", name_or_path="lsa", kind=ModelKind.lsa, precision="bf16")
    with pytest.raises(ConfigError, match="has no variants"):
        _build(cfg)


def test_calibration_on_the_test_split_is_refused() -> None:
    data = DataConfig(name="stsb", task="sts", splits={"test": {}, "train": {}})
    cfg = _cfg(embedding_dtype="int8", calibration=CalibrationConfig(split="test"))
    with pytest.raises(ConfigError, match=r"calibration\.split=test is the evaluation split of 'stsb'"):
        _build(cfg, [data])


def test_int8_without_calibration_texts_is_refused() -> None:
    data = DataConfig(name="demo", task="sts", splits={"test": {}})
    with pytest.raises(ConfigError, match="no dataset \\(demo\\) has a 'train' split"):
        _build(_cfg(embedding_dtype="int8"), [data])


# --- int8 and binary scoring on synthetic data -------------------------------------------------


def _synthetic(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _int8_format(
    calibration: np.ndarray, dtype: EmbeddingDtype = EmbeddingDtype.int8, rescore_multiplier: int = 0
) -> EmbeddingFormat:
    ranges = np.vstack([calibration.min(axis=0), calibration.max(axis=0)])
    return EmbeddingFormat(dtype, ranges=ranges, rescore_multiplier=rescore_multiplier)


def test_int8_round_trip_is_within_half_a_bucket() -> None:
    calibration, data = _synthetic(500), _synthetic(50, seed=1)
    fmt = _int8_format(calibration)
    codes = fmt.int8(data)
    assert codes.dtype == np.int8 and fmt.bytes_per_vector(64) == 64
    inside = (data >= fmt.ranges[0]) & (data <= fmt.ranges[1])
    step = (fmt.ranges[1] - fmt.ranges[0]) / 255
    error = np.abs(fmt.dequantize(codes) - data)
    assert (error[inside] <= np.broadcast_to(step, data.shape)[inside] * 0.5 + 1e-6).all()


def test_binary_scores_are_hamming_distances() -> None:
    queries, docs = _synthetic(7), _synthetic(40, seed=2)
    fmt = EmbeddingFormat(EmbeddingDtype.binary)
    bits_q, bits_d = fmt.bits(queries), fmt.bits(docs)
    brute = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)
    assert (hamming_distances(bits_q, bits_d) == brute).all()
    # the +-1 vectors the tasks compare: cosine = 1 - 2 * hamming / dim exactly
    a, b = fmt.to_scored(queries), fmt.to_scored(docs)
    cosine = (a @ b.T) / 64
    np.testing.assert_allclose(cosine, 1 - 2 * brute / 64, atol=1e-6)
    assert fmt.bytes_per_vector(64) == 8


def test_binary_search_without_rescoring_ranks_by_hamming() -> None:
    queries, docs = _synthetic(5), _synthetic(60, seed=3)
    search = QuantizedTopK(EmbeddingFormat(EmbeddingDtype.binary), queries, 10)
    search.add(docs[:25])
    search.add(docs[25:])
    scores, indices = search.result()
    distances = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)
    for row in range(5):
        assert list(distances[row, indices[row]]) == sorted(distances[row])[:10]
    np.testing.assert_allclose(scores, 1 - 2 * np.take_along_axis(distances, indices, 1) / 64)
    assert search.stored_bytes == 60 * 8  # only the bits are kept


def test_binary_search_rescores_candidates_with_int8_documents() -> None:
    queries, docs = _synthetic(5), _synthetic(60, seed=4)
    fmt = _int8_format(_synthetic(300, seed=5), dtype=EmbeddingDtype.binary, rescore_multiplier=3)
    search = QuantizedTopK(fmt, queries, 4)
    search.add(docs)
    scores, indices = search.result()
    distances = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(axis=2)
    restored = fmt.dequantize(fmt.int8(docs))
    restored /= np.linalg.norm(restored, axis=1, keepdims=True)
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    for row in range(5):
        candidates = np.argsort(distances[row], kind="stable")[:12]
        threshold = distances[row, candidates[-1]]
        assert (distances[row, indices[row]] <= threshold).all()  # only Hamming candidates
        expected = np.sort(unit[row] @ restored[candidates].T)[::-1][:4]
        np.testing.assert_allclose(scores[row], expected, atol=1e-5)


def test_int8_search_is_cosine_on_dequantized_documents() -> None:
    queries, docs = _synthetic(6), _synthetic(80, seed=6)
    fmt = _int8_format(_synthetic(300, seed=7))
    search = QuantizedTopK(fmt, queries, 5)
    search.add(docs)
    scores, _ = search.result()
    restored = fmt.dequantize(fmt.int8(docs))
    cosine = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        restored / np.linalg.norm(restored, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(scores, -np.sort(-cosine, axis=1)[:, :5], atol=1e-5)
    assert search.stored_bytes == 80 * 64


# --- end to end: select over variants of a tiny model ------------------------------------------

FAST = [
    "evaluation.show_progress=false",
    "select.resamples=200",
    "select.efficiency.sample_size=16",
    "select.efficiency.latency_queries=4",
    "tracking.log_datasets=false",
    "tracking.log_per_item=false",
]


@pytest.fixture(scope="module")
def variant_selection(tiny_st_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from embsel_mlflow.entrypoints import select as select_entrypoint
    from tests.tiny_models import _CORPUS

    cwd = tmp_path_factory.mktemp("variants")
    calibration = cwd / "calibration.txt"
    calibration.write_text("\n".join(_CORPUS))
    args = [
        "candidates=[e5_base]",
        f"candidates.e5_base.name_or_path={tiny_st_dir}",
        "candidates.e5_base.name=tiny",
        f"candidates.e5_base.variant.calibration.path={calibration}",
        "datasets=[demo_sts,demo_retrieval]",
        # onnx runs where the [onnx] extra is installed; onnx-int8 (int8_static) is refused everywhere
        "select.variants={precision: [bf16], embedding_dtype: [int8, binary], backend: [onnx], "
        "quantization: [int8_static]}",
        "select.max_quality_drop=1.0",
        f"tracking.uri=sqlite:///{cwd / 'mlflow.db'}",
        *FAST,
    ]
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        code = select_entrypoint.main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.chdir(previous)
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return code, client, parent, children


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_each_variant_is_a_child_and_a_refused_one_fails_alone(variant_selection) -> None:
    code, _, parent, children = variant_selection
    by_name = {c.info.run_name: c for c in children}
    import importlib.util

    onnx_installed = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx", "onnxscript"))
    variants = ["e5_base/fp32", "e5_base/bf16", "e5_base/int8-emb", "e5_base/binary-emb"]
    for variant in [*variants, *(["e5_base/onnx"] if onnx_installed else [])]:
        for dataset in ("demo_sts", "demo_retrieval"):
            child = by_name[f"{variant}@{dataset}"]
            assert child.info.status == "FINISHED", child.data.tags.get("error")
    refused = {"e5_base/onnx-int8": "int8_static is not offered on backend=onnx"}
    if not onnx_installed:
        refused["e5_base/onnx"] = 'which is not installed: pip install "embsel-mlflow[onnx]"'
    for variant, reason in refused.items():
        for dataset in ("demo_sts", "demo_retrieval"):
            failed = by_name[f"{variant}@{dataset}"]
            assert failed.info.status == "FAILED"
            assert reason in failed.data.tags["error"]
            assert "\n" not in failed.data.tags["error"]
    if onnx_installed:  # the fp32 export scores as the torch model does, and says what ran
        onnx = by_name["e5_base/onnx@demo_sts"]
        fp32 = by_name["e5_base/fp32@demo_sts"].data.metrics["main_score"]
        assert onnx.data.metrics["main_score"] == pytest.approx(fp32, abs=1e-4)
        assert '"backend": "onnx"' in onnx.data.tags["embsel.variant.runtime"]
        assert '"precision": "float32"' in onnx.data.tags["embsel.variant.runtime"]
    assert code == 2 and parent.info.status == "FAILED"
    assert by_name["e5_base/bf16@demo_sts"].data.tags["embsel.variant"] == "bf16"
    calibration = by_name["e5_base/int8-emb@demo_sts"].data.tags["embsel.variant.calibration"]
    assert "calibration.txt" in calibration and '"texts": 20' in calibration  # what calibrated it


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_variant_children_price_quality_speed_and_bytes(variant_selection) -> None:
    _, _, _, children = variant_selection
    by_name = {c.info.run_name: c for c in children}
    fp32 = by_name["e5_base/fp32@demo_retrieval"].data.metrics
    for variant, size in (("fp32", 4 * 32), ("int8-emb", 32), ("binary-emb", 4), ("bf16", 4 * 32)):
        metrics = by_name[f"e5_base/{variant}@demo_retrieval"].data.metrics
        assert metrics["efficiency/bytes_per_vector"] == size
        assert metrics["efficiency/memory_per_million_docs_mb"] == pytest.approx(size * 1e6 / 2**20)
        for key in ("texts_per_second", "latency_p50_ms", "latency_p95_ms", "model_size_mb"):
            assert metrics[f"efficiency/{key}"] > 0
    bf16 = by_name["e5_base/bf16@demo_retrieval"].data.metrics
    assert bf16["efficiency/model_size_mb"] < fp32["efficiency/model_size_mb"]
    # stored-embedding variants run the fp32 network: its timing, not one of their own
    for variant in ("int8-emb", "binary-emb"):
        child = by_name[f"e5_base/{variant}@demo_retrieval"]
        assert child.data.metrics["efficiency/texts_per_second"] == fp32["efficiency/texts_per_second"]
        assert child.data.tags["embsel.efficiency_source"] == "same_network"
        assert child.data.tags["embsel.efficiency_conditions"].startswith("other work on ")
    # int8 embeddings of the same (random, 32-d) float model: close to fp32
    int8 = by_name["e5_base/int8-emb@demo_sts"].data.metrics["main_score"]
    assert abs(int8 - by_name["e5_base/fp32@demo_sts"].data.metrics["main_score"]) < 0.1


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_leaderboard_shows_deltas_against_fp32(variant_selection) -> None:
    import json

    _, client, parent, _ = variant_selection
    markdown = Path(client.download_artifacts(parent.info.run_id, "leaderboard.md")).read_text()
    assert "vs fp32" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| e5_base/int8-emb "))
    assert "demo_sts " in row and "(p=" in row
    decision = json.loads(Path(client.download_artifacts(parent.info.run_id, "decision.json")).read_text())
    finished = {"e5_base/fp32", "e5_base/bf16", "e5_base/int8-emb", "e5_base/binary-emb", "e5_base/onnx"}
    assert decision["winner"] in finished
    assert "| B/vector | MB/1M docs |" in markdown


def test_quality_drop_beyond_the_limit_is_flagged() -> None:
    from embsel_mlflow.selection.decision import quality_drops
    from embsel_mlflow.selection.statistics import Comparison

    drop = Comparison("m/binary-emb", "m/fp32", 0.02, 0.01, 0.01, True)
    small = Comparison("m/int8-emb", "m/fp32", 0.0005, 0.5, 0.5, False)
    assert quality_drops("m/binary-emb", {"stsb": drop}, 0.01) == [
        "quality drop 0.0200 vs m/fp32 on stsb > select.max_quality_drop=0.01"
    ]
    assert quality_drops("m/int8-emb", {"stsb": small}, 0.01) == []


# --- the champion runs as its variant ran ---------------------------------------------------


@pytest.mark.slow  # process-level; the default suite stays under 10 minutes, CI runs -m slow too
def test_bf16_and_int8_champions_match_in_a_fresh_process(tiny_st_dir: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.selection.champion import register_champion
    from tests.tiny_models import _CORPUS

    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(_CORPUS))
    texts = ["A man is playing a guitar.", "The committee approved the budget.", "rain"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("champions")
    on_file = CalibrationConfig(path=str(calibration))
    variants = {
        "bf16": _cfg(str(tiny_st_dir), precision="bf16"),
        "int8": _cfg(str(tiny_st_dir), embedding_dtype="int8", calibration=on_file),
    }
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):  # the [openvino] extra
        ov = {"backend": "openvino", "quantization": "int8_static", "calibration": on_file}
        variants["ov"] = _cfg(str(tiny_st_dir), precision="bf16", **ov)
    expected, run_ids = {}, {}
    for name, cfg in variants.items():
        model = build_encoder(cfg)
        expected[name] = model.encode(texts)
        run_id = run_ids[name] = client.create_run(experiment).info.run_id  # one champion per run
        register_champion(client, run_id, model, f"tiny/{name}", f"champion_{name}", "champion", cfg=cfg)
    reference = build_encoder(_cfg(str(tiny_st_dir))).encode(texts)
    assert np.abs(expected["bf16"] - reference).max() > 0  # bf16 really ran in bf16
    code = (
        "import json, mlflow, numpy as np\n"
        f"texts = {texts!r}\n"
        "load = lambda n: mlflow.pyfunc.load_model(f'models:/champion_{n}@champion')\n"
        f"out = {{n: np.asarray(load(n).predict(texts)).tolist() for n in {list(variants)!r}}}\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert np.abs(np.asarray(loaded["bf16"], dtype=np.float32) - expected["bf16"]).max() < 1e-3
    assert np.array_equal(np.asarray(loaded["int8"], dtype=np.float32), expected["int8"])
    if "ov" in variants:  # the saved int8 OpenVINO model, at the same bf16 hint
        assert np.abs(np.asarray(loaded["ov"], dtype=np.float32) - expected["ov"]).max() < 1e-6
    settings = json.loads(
        Path(client.download_artifacts(run_ids["int8"], "champion/artifacts/settings.json")).read_text()
    )
    assert settings["variant"]["embedding_dtype"] == "int8" and len(settings["variant"]["ranges"]) == 2


# --- slow: the extra installs without touching the core stack; the real-data bar ------------


@pytest.mark.slow
@pytest.mark.parametrize("extra_name", ["openvino", "onnx"])
def test_backend_extra_resolves_without_changing_torch_or_transformers(
    extra_name: str, tmp_path: Path
) -> None:
    """`pip install --dry-run` of the pinned extra (needs PyPI): nothing of the core stack moves."""
    import json
    import subprocess
    import sys
    import tomllib

    extra = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ][extra_name]
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    planned = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert not planned & {"torch", "transformers", "sentence-transformers", "torchvision", "numpy"}


@pytest.mark.bench  # every variant on full STS-B + SciFact: a by-hand run (`pytest -m bench`)
def test_real_variants_bar(shared_data_dir: Path, tmp_path: Path) -> None:
    """minilm on STS-B + SciFact: bf16, int8/binary embeddings and OpenVINO int8 against fp32.

    Quality bars only: throughput ratios on a shared machine are measured (interleaved) and
    reported by benchmarks/bench_variants.py.
    """
    pytest.importorskip("openvino", reason="the OpenVINO variant needs the [openvino] extra")
    pytest.importorskip("nncf", reason="int8 static calibration needs the [openvino] extra")
    import importlib.util

    from embsel_mlflow.config import CacheConfig
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.selection import select_models
    from embsel_mlflow.selection.runner import default_loader

    bench_file = Path(__file__).parents[1] / "benchmarks" / "bench_variants.py"
    spec = importlib.util.spec_from_file_location("bench_variants", bench_file)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    os.environ.setdefault("EMBSEL_SHARED_DATA", str(shared_data_dir))
    job = bench.compose("minilm", ["stsb", "scifact"], bench.DEFAULT_VARIANTS)
    job.evaluation.show_progress = False
    cache = open_cache(CacheConfig(dir=str(tmp_path / "cache")))
    selection = select_models(
        job.candidates,
        job.datasets,
        job.select,
        job.evaluation,
        load_model=default_loader(cache, list(job.datasets.values())),
    )
    scores, deltas = selection.decision.scores, selection.decision.variant_deltas
    assert scores["minilm/fp32"]["stsb"] == pytest.approx(0.82032, abs=1e-4)
    assert scores["minilm/fp32"]["scifact"] == pytest.approx(0.64508, abs=1e-4)
    for dataset in ("stsb", "scifact"):
        assert abs(deltas["minilm/bf16"][dataset].difference) <= 0.002
        assert abs(deltas["minilm/int8-emb"][dataset].difference) <= 0.001
        assert abs(deltas["minilm/openvino-int8"][dataset].difference) <= 0.005
    assert scores["minilm/binary-emb"]["scifact"] >= 0.95 * scores["minilm/fp32"]["scifact"]
    costs = selection.decision.costs
    assert costs["minilm/fp32"].bytes_per_vector == 4 * costs["minilm/int8-emb"].bytes_per_vector


def test_openvino_variants_run_pinned_to_the_asked_precision(tiny_st_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from embsel_mlflow.candidates.base import build_encoder
    from embsel_mlflow.models.cache import EmbeddingCache
    from tests.tiny_models import _CORPUS

    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(_CORPUS))
    texts = list(_CORPUS[:6])
    reference = build_encoder(_cfg(str(tiny_st_dir))).encode(texts)
    cache = EmbeddingCache(tmp_path / "cache")
    fp32 = build_encoder(_cfg(str(tiny_st_dir), backend="openvino"), cache=cache)
    assert fp32.identity["variant"]["runtime"]["precision"] == "float32"  # not OpenVINO's bf16 default
    assert np.abs(fp32.encode(texts) - reference).max() < 1e-4
    exports = list((tmp_path / "cache" / "models" / "openvino").glob("*/model.xml"))
    assert len(exports) == 1  # export kept
    bf16 = build_encoder(_cfg(str(tiny_st_dir), backend="openvino", precision="bf16"), cache=cache)
    assert bf16.identity != fp32.identity  # another model for the embedding cache...
    assert list((tmp_path / "cache" / "models" / "openvino").glob("*/model.xml")) == exports  # ...one export
    static = _cfg(
        str(tiny_st_dir),
        backend="openvino",
        quantization="int8_static",
        calibration=CalibrationConfig(path=str(calibration)),
    )
    int8 = build_encoder(static)
    assert int8.identity["variant"]["calibration"]["texts"] == len(_CORPUS)
    assert int8.disk_size_bytes > 0  # the quantized OpenVINO model, as it runs
    cosine = np.sum(int8.encode(texts) * reference, axis=1) / (
        np.linalg.norm(int8.encode(texts), axis=1) * np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() > 0.9


def test_evaluate_takes_the_variant_keys(tiny_st_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from embsel_mlflow.entrypoints import evaluate

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [
        "model=e5_base",
        f"model.name_or_path={tiny_st_dir}",
        "data=demo_retrieval",
        "evaluation.show_progress=false",
        f"tracking.uri={uri}",
    ]

    def exit_code(args: list[str]) -> int:
        try:
            return evaluate.main(args)
        except SystemExit as exc:
            return int(exc.code or 0)

    binary_args = ["model.variant.embedding_dtype=binary", "model.variant.rescore_multiplier=0"]
    assert exit_code([*common, *binary_args]) == 0
    assert exit_code([*common, "model.variant.backend=onnx", "model.variant.quantization=int8_static"]) == 2
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    binary, onnx = client.search_runs(experiments, order_by=["start_time"])[-2:]
    assert binary.info.status == "FINISHED"
    assert binary.data.params["model.variant.embedding_dtype"] == "binary"
    assert '"embedding_dtype": "binary"' in binary.data.tags["embsel.variant.stored_embeddings"]
    assert onnx.info.status == "FAILED"
    assert "int8_static is not offered on backend=onnx" in onnx.data.tags["error"]
