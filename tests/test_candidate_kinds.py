"""A candidate kind is one registered object: a kind defined here, outside the package, is a candidate
of `embsel evaluate` and `embsel select` like the built-ins (FINISHED runs in the sqlite store)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embsel_mlflow.candidates import (
    KINDS,
    BuildContext,
    CandidateKind,
    build_encoder,
    get_kind,
    register_kind,
)
from embsel_mlflow.config import ModelConfig
from embsel_mlflow.errors import ConfigError
from embsel_mlflow.models.base import EmbeddingModel, encode_prompted
from embsel_mlflow.models.identity import model_identity
from embsel_mlflow.models.resolve import ResolvedModel
from tests.cli_harness import invoke, snapshot

KIND = "hashed_bow"
DIM = 64


class HashedBowEncoder:
    """Words hashed into ``DIM`` buckets, counted: a bag-of-words embedding with no weights at all."""

    registrable = False  # nothing to save as a model
    device = "cpu"
    num_parameters = 0
    disk_size_bytes = None

    def __init__(self, cfg: ModelConfig) -> None:
        self.config = cfg

    def encode(
        self, texts: Sequence[str], *, role: str | None = None, show_progress: bool = False
    ) -> np.ndarray:
        return encode_prompted(self.config, texts, role, self._embed, lambda: DIM)

    @staticmethod
    def _embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIM] += 1.0
        return out

    def for_dataset(self, data: Any) -> HashedBowEncoder:
        return self

    @property
    def source(self) -> ResolvedModel:
        return ResolvedModel(f"hashed-bow-{DIM}", "hashed")

    @property
    def embedding_dim(self) -> int:
        return DIM

    @property
    def identity(self) -> dict[str, Any]:
        return model_identity(self.config, self.source, {"dim": DIM})


class HashedBowKind(CandidateKind):
    name = KIND

    def build(self, cfg: ModelConfig, context: BuildContext) -> HashedBowEncoder:
        return HashedBowEncoder(cfg)


@pytest.fixture
def hashed_bow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The kind registered for this test only, and its model config on a Hydra search path."""
    monkeypatch.setitem(KINDS, KIND, HashedBowKind())
    conf = tmp_path / "my_conf" / "model"
    conf.mkdir(parents=True)
    (conf / "bow.yaml").write_text(f"name: bow\nname_or_path: hashed-bow\nkind: {KIND}\n")
    return f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"


def _store(tmp_path: Path) -> str:
    return f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_registered_kind_builds_through_the_cache(hashed_bow: str, tmp_path: Path) -> None:
    from embsel_mlflow.models.cache import EmbeddingCache

    assert get_kind(KIND).name == KIND
    cfg = ModelConfig(name="bow", name_or_path="hashed-bow", kind=KIND)
    candidate = build_encoder(cfg, cache=EmbeddingCache(tmp_path / "cache"))
    assert isinstance(candidate, EmbeddingModel)
    first = candidate.encode(["a cat", "a dog"])
    assert first.shape == (2, DIM) and candidate.encode(["a cat"]).tolist() == first[:1].tolist()
    assert candidate.identity["kind"] == KIND and candidate.identity[KIND] == {"dim": DIM}


def test_an_unknown_kind_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        build_encoder(ModelConfig(name="x", name_or_path="x", kind="no_such_kind"))
    message = str(err.value)
    assert "'no_such_kind'" in message and "sentence_transformers" in message and "\n" not in message
    with pytest.raises(TypeError):
        register_kind(CandidateKind())  # unnamed


def test_evaluate_and_select_run_a_kind_defined_outside_the_package(
    hashed_bow: str, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    quiet = ["evaluation.show_progress=false", _store(tmp_path)]
    # evaluate links the data profile (its token counts ask the candidate's kind; bow has no tokenizer)
    evaluated = invoke("evaluate", hashed_bow, "model=bow", "data=demo_sts", *quiet, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    (run,) = snapshot(tmp_path / "mlflow.db").runs().values()
    assert run.status == "FINISHED" and run.params["model.kind"] == KIND

    before = set(snapshot(tmp_path / "mlflow.db").runs())
    selected = invoke(
        "select",
        hashed_bow,
        "candidates=[bow,transformers_mean]",
        f"candidates.transformers_mean.name_or_path={tiny_bert_dir}",
        "datasets=[demo_sts]",
        "select.resamples=100",
        "select.efficiency.sample_size=16",
        "select.efficiency.latency_queries=4",
        "profile.link=false",  # profiled above; here it would only time the tiny model's tokenizer
        *quiet,
        cwd=tmp_path,
    )
    assert selected.returncode == 0, selected.stderr
    runs = {key: r for key, r in snapshot(tmp_path / "mlflow.db").runs().items() if key not in before}
    assert len(runs) == 3  # the parent and one child per candidate
    assert {r.status for r in runs.values()} == {"FINISHED"}
    assert {r.params.get("model.kind") for r in runs.values()} >= {KIND, "transformers"}
    assert "| bow |" in selected.stdout
