"""Token lengths of texts for each candidate model: its own tokenizer, or word counts when it has none.

Only the tokenizer is loaded (from the source the model layer resolves, offline copies sha256-checked),
never the weights: profiling stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.config import ModelKind
from embsel_mlflow.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from embsel_mlflow.config import ModelConfig

# Kinds that embed through a Hugging Face tokenizer (static: the teacher's tokenizer).
_NO_LIMIT = 1_000_000  # transformers' "no limit" model_max_length is a huge int


@dataclass
class CandidateTokenizer:
    """How one candidate splits text: ``tokenizer`` None means word counts (LSA, BM25, APIs)."""

    name: str
    tokenizer: Any = None
    max_seq_length: int | None = None  # None: no truncation limit known
    note: str = ""

    @property
    def unit(self) -> str:
        return "tokens" if self.tokenizer is not None else "words"


@dataclass
class TokenStats:
    unit: str  # tokens | words
    max_seq_length: int | None
    lengths: np.ndarray = field(repr=False)  # one per text (special tokens included)
    truncated_count: int
    unknown_tokens: int
    total_tokens: int  # excluding special tokens

    @property
    def truncation_rate(self) -> float:
        return self.truncated_count / self.lengths.size if self.lengths.size else 0.0

    @property
    def unknown_token_rate(self) -> float:
        return self.unknown_tokens / self.total_tokens if self.total_tokens else 0.0

    def metrics(self) -> dict[str, float]:
        from embsel_mlflow.text.lengths import LengthSummary

        summary = LengthSummary.of(self.lengths)
        metrics = {
            f"{self.unit}_mean": summary.mean,
            f"{self.unit}_p95": summary.p95,
            f"{self.unit}_max": summary.max,
        }
        if self.unit == "tokens":
            metrics["unknown_token_rate"] = self.unknown_token_rate
        if self.max_seq_length is not None:
            metrics["truncation_rate"] = self.truncation_rate
        return metrics

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        from embsel_mlflow.text.lengths import LengthSummary

        return {
            "unit": self.unit,
            "max_seq_length": self.max_seq_length,
            "lengths": asdict(LengthSummary.of(self.lengths)),
            "truncated_count": self.truncated_count,
            "truncation_rate": self.truncation_rate,
            "unknown_tokens": self.unknown_tokens,
            "unknown_token_rate": self.unknown_token_rate,
        }


def load_candidate_tokenizer(name: str, cfg: ModelConfig) -> CandidateTokenizer:
    """The tokenizer of candidate ``name``; a ModelError when its files cannot be found."""
    from embsel_mlflow.candidates import get_kind

    if not get_kind(cfg.kind, model=name).tokenized:
        return CandidateTokenizer(name, note=f"{cfg.kind} has no tokenizer: word counts")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from embsel_mlflow.models.resolve import resolve_model_source

    source = resolve_model_source(cfg)
    hf_logging.set_verbosity_error()  # "sequence longer than the maximum" is what we measure, not a problem
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.path_or_id, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, token=cfg.token
        )
    except Exception as exc:  # missing files, offline hub, a tokenizer transformers does not know
        raise ModelError(
            f"candidate {name!r}: cannot load the tokenizer of {cfg.name_or_path!r}: {exc}"
        ) from exc
    limit = cfg.max_seq_length or _model_limit(Path(source.path_or_id), tokenizer)
    if cfg.kind == ModelKind.static and cfg.max_seq_length is None:
        limit = None  # a static model averages token vectors: no position limit
    return CandidateTokenizer(name, tokenizer, limit, note=f"tokenizer from {source.path_or_id}")


def _model_limit(model_dir: Path, tokenizer: Any) -> int | None:
    """The length a sentence-transformers model truncates at, else the tokenizer's own limit."""
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        limit = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if limit:
            return int(limit)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < _NO_LIMIT else None


def token_stats(
    candidate: CandidateTokenizer, texts: list[str], *, batch_size: int, progress: Any = None
) -> TokenStats:
    """Lengths of ``texts`` for ``candidate``; each distinct text is tokenized once."""
    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(pd.Series(texts, dtype=object), sort=False)
    distinct = list(distinct)
    if candidate.tokenizer is None:
        per_distinct = pd.Series(distinct, dtype=object).str.count(r"\S+").to_numpy(dtype=np.int64)
        unknown = np.zeros(len(distinct), dtype=np.int64)
        special = 0
    else:
        per_distinct, unknown = _tokenize(candidate.tokenizer, distinct, batch_size, progress)
        special = len(candidate.tokenizer("")["input_ids"])  # [CLS] [SEP] and the like
    lengths = per_distinct[codes] if len(codes) else np.zeros(0, dtype=np.int64)
    limit = candidate.max_seq_length
    truncated = int((lengths > limit).sum()) if limit is not None else 0
    return TokenStats(
        unit=candidate.unit,
        max_seq_length=limit,
        lengths=lengths,
        truncated_count=truncated,
        unknown_tokens=int(unknown[codes].sum()) if len(codes) else 0,
        total_tokens=int(lengths.sum() - special * lengths.size),
    )


def _tokenize(
    tokenizer: Any, texts: list[str], batch_size: int, progress: Any
) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    lengths = np.zeros(len(texts), dtype=np.int64)
    unknown = np.zeros(len(texts), dtype=np.int64)
    unk = tokenizer.unk_token_id
    encode = _batch_encoder(tokenizer)
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        ids = encode(batch)
        lengths[start : start + len(batch)] = [len(row) for row in ids]
        if unk is not None:
            unknown[start : start + len(batch)] = [row.count(unk) for row in ids]
        if progress is not None:
            progress.update(len(batch))
    return lengths, unknown


def _batch_encoder(tokenizer: Any) -> Any:
    """texts -> token ids (special tokens added, no truncation, no padding).

    A fast tokenizer's Rust backend is called directly, on a copy with truncation and padding off
    (a tokenizer.json may switch them on): transformers' per-text conversion to Python objects cost
    about as much as the tokenizing itself.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return lambda batch: tokenizer(
            batch, add_special_tokens=True, truncation=False, return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]  # fmt: skip
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())
    plain.no_truncation()
    plain.no_padding()
    return lambda batch: [
        encoding.ids for encoding in plain.encode_batch_fast(batch, add_special_tokens=True)
    ]
