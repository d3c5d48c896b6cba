"""Tiny image-text dual encoders built offline for tests (random seeded weights, about a second).

Ordinary saved transformers models (config.json, model.safetensors, tokenizer and image
processor configs): tests load them through the same public path as a real CLIP or SigLIP
(``build_encoder(ModelConfig(kind="clip", name_or_path=<dir>))``), so nothing about loading is
faked. The tokenizers are trained here with the ``tokenizers`` library: a byte-level BPE in
CLIP's format (``CLIPTokenizer``) and a SentencePiece-style Unigram for SigLIP (saved as a fast
tokenizer: SigLIP's own class needs the sentencepiece package).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.tiny_models import _CORPUS

HIDDEN_SIZE = 32
IMAGE_SIZE = 32
PATCH_SIZE = 8
TEXT_POSITIONS = 32
SEED = 0

# Captions of the digits demo set, so their words are in the tiny vocabularies.
CAPTIONS = [f"a handwritten digit {digit}" for digit in range(10)] + [
    f"a photo of the number {word}"
    for word in ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
]


def _tower(**extra: int) -> dict[str, int]:
    return {
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        **extra,
    }


def build_tiny_clip(directory: str | Path) -> Path:
    """Save a seeded tiny ``CLIPModel`` (16-d projections) and its ``CLIPProcessor`` to ``directory``."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    # A byte-level BPE with CLIP's end-of-word suffix, learnt on the corpus; CLIPTokenizer then
    # applies CLIP's own normaliser, pre-tokeniser and <bos> ... <eos> template to it.
    bpe = Tokenizer(models.BPE(unk_token=eos, end_of_word_suffix="</w>", continuing_subword_prefix=""))
    bpe.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        _CORPUS + CAPTIONS,
        trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=[bos, eos],
            end_of_word_suffix="</w>",
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = CLIPTokenizer(vocab=trained["vocab"], merges=merges, model_max_length=TEXT_POSITIONS)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    config = CLIPConfig(
        text_config=_tower(
            vocab_size=len(tokenizer),
            max_position_embeddings=TEXT_POSITIONS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=_tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
        projection_dim=16,
    )
    torch.manual_seed(SEED)
    CLIPModel(config).save_pretrained(out)  # safetensors
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


def build_tiny_siglip(directory: str | Path) -> Path:
    """Save a seeded tiny ``SiglipModel`` (32-d) and its ``SiglipProcessor`` to ``directory``."""
    import torch
    from tokenizers import SentencePieceUnigramTokenizer, processors
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel, SiglipProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(
        _CORPUS + CAPTIONS, vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    unigram.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", unigram.token_to_id("</s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=unigram,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=TEXT_POSITIONS,
    )
    config = _quietly(
        SiglipConfig,
        text_config=_tower(
            vocab_size=len(tokenizer),
            max_position_embeddings=TEXT_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=_tower(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE),
    )
    torch.manual_seed(SEED)
    SiglipModel(config).save_pretrained(out)
    processor = SiglipProcessor(
        image_processor=SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(out)
    return out


def _quietly(factory: Any, **kwargs: Any) -> Any:
    """``factory(**kwargs)`` without transformers' warnings (SigLIP's config first builds its
    default text config, whose token ids are outside a tiny vocabulary, and says so)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return factory(**kwargs)
    finally:
        hf_logging.set_verbosity(level)


def write_digit_pngs(directory: str | Path, count: int | None = None) -> list[tuple[str, str]]:
    """scikit-learn's digits (real 8x8 scans) as grayscale PNGs: [(file name, label), ...].

    Values 0..16 scaled to 0..255, as ``embsel demo-data digits`` writes them.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    rows = []
    for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        if count is not None and index >= count:
            break
        name = f"{index}.png"
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(out / name)
        rows.append((name, str(label)))
    return rows
