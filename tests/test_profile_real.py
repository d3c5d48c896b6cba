"""`embsel profile` on the shared SciFact corpus with the offline MiniLM (slow: real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from embsel_mlflow.config import DataConfig, ModelConfig, ProfileConfig
from embsel_mlflow.config.store import compose_config
from embsel_mlflow.jobs.app import to_job_config
from embsel_mlflow.profiling.profile import profile_job_data

pytestmark = pytest.mark.slow


def test_scifact_truncation_at_256_matches_a_direct_count(shared_data_dir: Path, monkeypatch) -> None:
    from transformers import AutoTokenizer

    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.models.resolve import resolve_model_source

    monkeypatch.setenv("EMBSEL_SHARED_DATA", str(shared_data_dir))
    cfg = compose_config("profile", ["data=scifact", "candidates=[minilm]"])
    data = to_job_config(cfg.data, DataConfig, "profile")
    minilm = to_job_config(cfg.candidates.minilm, ModelConfig, "profile")
    profile = profile_job_data(data, candidates={"minilm": minilm}, cfg=ProfileConfig(show_progress=False))
    reported = profile.metrics()["profile/corpus/document/truncation_rate/minilm"]

    # the direct count: the documents evaluate embeds, through the model's own tokenizer
    documents = list(load_task_data(data).examples.corpus.values())
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_source(minilm).path_or_id)
    direct = sum(len(ids) > 256 for ids in tokenizer(documents)["input_ids"]) / len(documents)
    assert profile.column("corpus/document").tokens["minilm"].max_seq_length == 256
    assert abs(reported - direct) <= 0.005, (reported, direct)
    print(f"scifact corpus truncated at 256 tokens for minilm: reported {reported:.4f}, direct {direct:.4f}")
