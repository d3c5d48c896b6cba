"""Tiny real models built offline for tests (a few hundred kB, built in about a second).

They are ordinary saved models: tests load them through the same public path as a real
model (``load_encoder`` with ``name_or_path=<dir>``), so nothing about loading is faked.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

HIDDEN_SIZE = 32
MAX_POSITIONS = 128
SEED = 0
VOCAB_SIZE = 400

# A small built-in corpus, enough for WordPiece to learn common English subwords.
_CORPUS = [
    "A man is playing a guitar on the stage.",
    "A woman is slicing an onion in the kitchen.",
    "The cat sat on the mat and looked out of the window.",
    "Two dogs are running through a field of tall grass.",
    "A child is riding a red bicycle down the street.",
    "The stock market fell sharply after the announcement.",
    "Scientists discovered a new species of frog in the rainforest.",
    "How do I reset my card pin at the cash machine?",
    "My transfer has not arrived in my account yet.",
    "The protein binds to the receptor and blocks the signal.",
    "Vitamin D deficiency is associated with a higher risk of fractures.",
    "The committee approved the budget for the next fiscal year.",
    "She reads a book every evening before going to sleep.",
    "Heavy rain caused flooding in several coastal towns.",
    "The new phone has a larger screen and a faster processor.",
    "A group of people are dancing at a wedding party.",
    "The train to the airport leaves every twenty minutes.",
    "Researchers measured the effect of exercise on blood pressure.",
    "Why was my payment declined when I have money in my account?",
    "The orchestra played a symphony by Beethoven last night.",
]


def build_tiny_bert(directory: str | Path) -> Path:
    """Save a randomly initialised (seeded) tiny BERT and a WordPiece tokenizer to ``directory``.

    The result is a plain transformers model directory (config.json, model.safetensors and a
    BertTokenizerFast), i.e. what ``kind=transformers`` expects.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # A WordPiece vocabulary learnt with the `tokenizers` trainer, as for a real BERT. The
    # trainer breaks frequency ties in hash order, so the vocabulary may differ between builds:
    # tests compare against references computed on the same built model, never fixed numbers.
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        _CORPUS, trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=tok,
        model_max_length=MAX_POSITIONS,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )

    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
    )
    torch.manual_seed(SEED)
    model = BertModel(config)
    model.save_pretrained(out)  # safetensors is the default (and only) format in transformers >= 5
    tokenizer.save_pretrained(out)
    return out


def build_tiny_sentence_transformer(directory: str | Path) -> Path:
    """Save the tiny BERT + mean pooling as a SentenceTransformer directory (with modules.json)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    out = Path(directory)
    with tempfile.TemporaryDirectory() as bert_dir:
        transformer = Transformer(str(build_tiny_bert(bert_dir)))
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
    return out
