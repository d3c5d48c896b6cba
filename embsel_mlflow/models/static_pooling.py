"""model2vec's ``StaticModel.encode``, bit for bit, without its per-text Python work.

model2vec tokenizes every text with the Hugging Face tokenizer, then averages token vectors
length bucket by length bucket. Most of that time is the tokenizer's normalizer and
pre-tokenizer running again on words it has seen many times. Here:

- **Word-piece memo.** For a BERT-style tokenizer (BertNormalizer, BertPreTokenizer,
  WordPiece), printable ASCII is lower-cased and split into words and punctuation exactly as the
  pre-tokenizer splits it; each distinct word is tokenized once by the real tokenizer and
  remembered. In a text with other characters, each chunk between ASCII spaces, tabs and
  newlines (a pre-token boundary for every normaliser step) that holds one is tokenized alone
  by the tokenizer, and remembered too. A text holding a special-token string ("[UNK]"), and
  any other tokenizer, goes through the tokenizer whole. The memo fills as texts are encoded:
  ``select`` times a candidate after evaluating it, so a static model is timed with the words of
  the dataset known, as LSA is timed with the vocabulary it was fitted on.
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
# BertPreTokenizer on ASCII: runs of letters and digits, and each punctuation character alone.
_WORDS_LOWER = re.compile(r"[a-z0-9]+|\x1f|[^a-z0-9\s]")
_WORDS_CASED = re.compile(r"[A-Za-z0-9]+|\x1f|[^A-Za-z0-9\s]")
_MEMO_LIMIT = 2_000_000  # distinct words remembered before the memo starts over
_SEPARATOR, _SEPARATOR_ID = "\x1f", -1  # between texts in one string; never in a simple text
_RAW = "\x00"  # memo key prefix of a chunk the tokenizer splits itself (never in a simple word)
_ASCII_SPACE = re.compile(r"[ \t\n\r]+")  # whitespace to every definition: a pre-token boundary
_SIMPLE, _CHUNKED, _WHOLE = range(3)
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
        self._pieces: dict[str, list[int]] = {_SEPARATOR: [_SEPARATOR_ID]}

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
        if max_length is not None:
            chars = max_length * self._model.median_token_length
            texts = [text[:chars] for text in texts]
        flat, lengths = self._token_ids(list(texts), max_length)
        return self._pooled(flat, lengths)

    def _route(self, text: str) -> int:
        """How ``text`` is split: by the joined regex, chunk by chunk, or by the tokenizer whole."""
        if self._lowercase is None:
            return _WHOLE
        if self._special is not None and self._special.search(text.lower() if self._lowercase else text):
            return _WHOLE  # the tokenizer matches added tokens like "[UNK]" in the raw text
        if text.isascii() and (text.isprintable() or _NOT_SIMPLE.search(text) is None):
            return _SIMPLE
        return _CHUNKED

    def _chunk_words(self, text: str) -> list[str]:
        """Words of a text with non-ASCII or control characters: its ASCII-whitespace chunks are
        pre-token boundaries, so a plain chunk is split here and any other is tokenized alone."""
        pattern = _WORDS_LOWER if self._lowercase else _WORDS_CASED
        words: list[str] = []
        for chunk in _ASCII_SPACE.split(text):
            if chunk.isascii() and chunk.isprintable():
                words += pattern.findall(chunk.lower() if self._lowercase else chunk)
            elif chunk:
                words.append(_RAW + chunk)
        return words

    def _token_ids(self, texts: list[str], max_length: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(every text's token ids one after the other, the number of ids of each text)."""
        count = len(texts)
        routes = [self._route(text) for text in texts]
        # All simple texts in one string, one separator between texts: one regex pass, and the
        # separator's "pieces" ([-1]) mark where each text's ids end.
        joined = _SEPARATOR.join(text if r == _SIMPLE else "" for text, r in zip(texts, routes, strict=True))
        if self._lowercase:
            joined = joined.lower()
        words = (_WORDS_LOWER if self._lowercase else _WORDS_CASED).findall(joined)
        chunked = {i: self._chunk_words(texts[i]) for i, r in enumerate(routes) if r == _CHUNKED}
        self._remember([*words, *_chain(chunked.values())])
        pieces = self._pieces
        flat = np.fromiter(_chain(map(pieces.__getitem__, words)), dtype=np.int64)
        boundary = flat == _SEPARATOR_ID
        text_of = np.cumsum(boundary)[~boundary]
        flat = flat[~boundary]
        lengths = np.bincount(text_of, minlength=count)
        rows = {
            i: np.fromiter(_chain(map(pieces.__getitem__, split)), dtype=np.int64)
            for i, split in chunked.items()
        }
        rows.update(self._tokenized([i for i, r in enumerate(routes) if r == _WHOLE], texts, max_length))
        if rows:
            per_text = np.split(flat, np.cumsum(lengths)[:-1])
            for i, ids in rows.items():
                per_text[i] = ids
            flat = np.concatenate(per_text)
            lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=count)
        if max_length is not None and lengths.max(initial=0) > max_length:  # the tokenizer's truncation
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            keep = np.arange(flat.size) - np.repeat(starts, lengths) < max_length
            flat, lengths = flat[keep], np.minimum(lengths, max_length)
        return flat, lengths

    def _tokenized(self, rows: list[int], texts: list[str], max_length: int | None) -> dict[int, np.ndarray]:
        """The ids the tokenizer itself gives the texts at ``rows``."""
        if not rows:
            return {}
        model = self._model
        model._set_max_length_in_tokenizer(max_length)  # truncation, as model2vec's encode sets it
        try:
            encoded = model.tokenizer.encode_batch_fast([texts[i] for i in rows], add_special_tokens=False)
        finally:
            model._set_max_length_in_tokenizer(model.max_length)
        return {i: np.asarray(e.ids, dtype=np.int64) for i, e in zip(rows, encoded, strict=True)}

    def _remember(self, words: list[str]) -> None:
        """Tokenize the words and chunks not seen yet, each alone (pre-tokens do not interact)."""
        new = list(set(words).difference(self._pieces))
        if not new:
            return
        if len(self._pieces) + len(new) > _MEMO_LIMIT:
            self._pieces = {_SEPARATOR: [_SEPARATOR_ID]}
            new = list(set(words).difference(self._pieces))
        model = self._model
        model._set_max_length_in_tokenizer(None)  # a word's pieces in full; texts are cut later
        try:
            encoded = model.tokenizer.encode_batch_fast(
                [word.removeprefix(_RAW) for word in new], add_special_tokens=False
            )
        finally:
            model._set_max_length_in_tokenizer(model.max_length)
        self._pieces.update(zip(new, (encoding.ids for encoding in encoded), strict=True))

    def _pooled(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        from scipy.sparse import csr_matrix

        count = len(lengths)
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
