"""model2vec's ``StaticModel.encode``, bit for bit, without its per-text Python work.

model2vec tokenizes every text with the Hugging Face tokenizer, then averages token vectors
length bucket by length bucket. Most of that time is the tokenizer's normalizer and
pre-tokenizer running again on words it has seen many times. Here:

- **Word-piece memo.** For a BERT-style tokenizer (BertNormalizer, BertPreTokenizer,
  WordPiece), an ASCII text without control characters or special-token strings is
  lower-cased and split into words and punctuation exactly as the pre-tokenizer splits it; each
  distinct word is tokenized once by the real tokenizer and remembered. Any other text, and any
  other tokenizer, goes through the tokenizer itself.
- **One sparse product.** Each text's token ids become a row of a CSR matrix (one entry per
  token, in order), and its product with the float32 embedding table sums each text's token
  vectors in token order: the same float32 sums, hence the same means, as model2vec's.

Truncation (characters, then ``max_length`` tokens), unknown-token removal, the float16/32
rounding of the stored vectors and model2vec's normalisation are reproduced as model2vec does
them. Tests compare the output with ``StaticModel.encode`` for equality.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from model2vec import StaticModel

# Text the memo may split itself: printable ASCII plus the whitespace BertNormalizer keeps.
_NOT_SIMPLE = re.compile(r"[^\x20-\x7e\t\n\r]")
_WORDS_LOWER = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")  # BertPreTokenizer on lower-cased ASCII
_WORDS_CASED = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9\s]")
_MEMO_LIMIT = 2_000_000  # distinct words remembered before the memo starts over
_chain = itertools.chain.from_iterable


class StaticPooling:
    """Mean-pooled embeddings of a model2vec model, equal to ``model.encode(texts, max_length=...)``."""

    def __init__(self, model: StaticModel) -> None:
        self._model = model
        self._table = np.asarray(model.embedding, dtype=np.float32)  # exact: float16 -> float32
        self._dtype = model.embedding.dtype  # model2vec averages into an array of this dtype
        config = json.loads(model.tokenizer.to_str())
        self._lowercase = _bert_lowercase(config)
        self._special = _special_strings(model.tokenizer, lowercase=bool(self._lowercase))
        self._pieces: dict[str, list[int]] = {}

    @staticmethod
    def supports(model: StaticModel) -> bool:
        """Plain float vectors, no vocabulary quantisation or token weights, no padding."""
        config = json.loads(model.tokenizer.to_str())
        padding = config.get("padding")
        return (
            model.token_mapping is None
            and model.weights is None
            and np.dtype(model.embedding.dtype) in (np.dtype(np.float16), np.dtype(np.float32))
            and (padding is None or padding.get("strategy") == {"Fixed": 0})
        )

    def encode(self, texts: Sequence[str], max_length: int | None) -> np.ndarray:
        model = self._model
        if max_length is not None:
            chars = max_length * model.median_token_length
            texts = [text[:chars] for text in texts]
        return self._pooled(self._token_ids(list(texts), max_length))

    def _token_ids(self, texts: list[str], max_length: int | None) -> list[list[int]]:
        words: list[list[str] | None] = [None] * len(texts)
        if self._lowercase is not None:
            pattern = _WORDS_LOWER if self._lowercase else _WORDS_CASED
            for i, text in enumerate(texts):
                if _NOT_SIMPLE.search(text) is None:
                    text = text.lower() if self._lowercase else text
                    if self._special is None or self._special.search(text) is None:
                        words[i] = pattern.findall(text)
        self._remember([w for w in words if w is not None])
        pieces = self._pieces
        ids: list[list[int]] = [
            [] if split is None else list(_chain(map(pieces.__getitem__, split)))[:max_length]
            for split in words
        ]
        others = [i for i, split in enumerate(words) if split is None]
        if others:
            model = self._model
            model._set_max_length_in_tokenizer(max_length)  # truncation, as model2vec's encode sets it
            try:
                encoded = model.tokenizer.encode_batch_fast(
                    [texts[i] for i in others], add_special_tokens=False
                )
            finally:
                model._set_max_length_in_tokenizer(model.max_length)
            for i, encoding in zip(others, encoded, strict=True):
                ids[i] = encoding.ids
        return ids

    def _remember(self, splits: list[list[str]]) -> None:
        """Tokenize the words not seen yet (each alone: WordPiece works word by word)."""
        new = list(set(_chain(splits)).difference(self._pieces))
        if not new:
            return
        if len(self._pieces) + len(new) > _MEMO_LIMIT:
            self._pieces.clear()
            new = list(set(_chain(splits)))
        model = self._model
        model._set_max_length_in_tokenizer(None)  # a word's pieces in full; texts are cut later
        try:
            encoded = model.tokenizer.encode_batch_fast(new, add_special_tokens=False)
        finally:
            model._set_max_length_in_tokenizer(model.max_length)
        self._pieces.update(zip(new, (encoding.ids for encoding in encoded), strict=True))

    def _pooled(self, ids: list[list[int]]) -> np.ndarray:
        from scipy.sparse import csr_matrix

        count = len(ids)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=count)
        flat = np.fromiter(_chain(ids), dtype=np.int64, count=int(lengths.sum()))
        unk = self._model.unk_token_id
        if unk is not None:  # model2vec drops unknown tokens (word-level vocabularies)
            keep = flat != unk
            if not keep.all():
                rows = np.repeat(np.arange(count), lengths)[keep]
                flat, lengths = flat[keep], np.bincount(rows, minlength=count)
        indptr = np.concatenate(([0], np.cumsum(lengths)))
        tokens = csr_matrix(
            (np.ones(flat.size, dtype=np.float32), flat, indptr), shape=(count, self._table.shape[0])
        )
        sums = np.asarray(tokens @ self._table, dtype=np.float32)  # token-order float32 sums
        means = np.zeros((count, self._table.shape[1]), dtype=np.float32)
        filled = lengths > 0
        means[filled] = sums[filled] / lengths[filled, None].astype(np.float32)
        out = means.astype(self._dtype)  # model2vec stores the mean in the table's dtype
        if self._model.normalize:
            out32 = out.astype(np.float32)
            norm = np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32
            return (out32 / norm).astype(out.dtype)
        return out


def _bert_lowercase(config: dict[str, Any]) -> bool | None:
    """Whether a BERT-style tokenizer lower-cases (None: not BERT-style, the memo is not used)."""
    normalizer, pre_tokenizer, model = (config.get(k) or {} for k in ("normalizer", "pre_tokenizer", "model"))
    if (
        normalizer.get("type") != "BertNormalizer"
        or not normalizer.get("clean_text", True)
        or pre_tokenizer.get("type") != "BertPreTokenizer"
        or model.get("type") != "WordPiece"
    ):
        return None
    return bool(normalizer.get("lowercase", True))


def _special_strings(tokenizer: Any, *, lowercase: bool) -> re.Pattern[str] | None:
    """A pattern for the added tokens (e.g. "[UNK]"), which the tokenizer matches in raw text."""
    contents = [token.content for token in tokenizer.get_added_tokens_decoder().values() if token.content]
    if not contents:
        return None
    contents = [c.lower() for c in contents] if lowercase else contents
    return re.compile("|".join(re.escape(c) for c in sorted(set(contents), key=len, reverse=True)))
