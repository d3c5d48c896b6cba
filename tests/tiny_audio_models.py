"""Audio for tests: a tiny CLAP built offline, and real speech made with espeak-ng.

The tiny CLAP is an ordinary saved model (config.json, model.safetensors, a RoBERTa-style BPE
tokenizer trained here and a ClapFeatureExtractor), loaded through the same public path as a
Hub CLAP (``model.kind=clap``, ``name_or_path=<dir>``). Its weights are random (seeded).

The speech is real synthesis: espeak-ng voices read sentence-length utterances (one-word clips
are too short for a speaker encoder), written as WAV at espeak-ng's own rate (22.05 kHz), so
every model resamples through the media decode path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.tiny_models import _CORPUS

SEED = 0
CLAP_SAMPLE_RATE = 48_000  # as laion/clap-htsat-unfused
CLAP_MAX_LENGTH_S = 2  # clips are padded or cropped to 2 s (the real model: 10 s)

# Six espeak-ng voices that differ in timbre (variants change pitch, formants and breath, which
# is what a speaker encoder hears; espeak's accents alone share one timbre).
VOICES = ("en-us+m3", "en-gb+f2", "en-us+klatt", "en-gb-scotland+Andy", "en-029+Alicia", "en-us-nyc+Storm")
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells sea shells by the sea shore every summer morning.",
    "Please call me back when you have a free moment this afternoon.",
    "The weather today is cloudy with a chance of rain in the evening.",
    "My favourite book tells the story of a sailor lost at sea.",
)


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(path: Path, voice: str, sentence: str) -> Path:
    """One utterance of ``sentence`` by espeak-ng ``voice``, written to ``path`` (WAV, mono, 22.05 kHz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), sentence], check=True, capture_output=True)
    return path


def speech_set(directory: Path, voices: tuple[str, ...] = VOICES, sentences: tuple[str, ...] = SENTENCES):
    """Every voice reading every sentence: (relative paths, speaker labels, sentences), voice by voice."""
    paths, speakers, texts = [], [], []
    for v, voice in enumerate(voices):
        for s, sentence in enumerate(sentences):
            relative = f"audio/v{v}_s{s}.wav"
            speak(directory / relative, voice, sentence)
            paths.append(relative)
            speakers.append(voice)
            texts.append(sentence)
    return paths, speakers, texts


def build_tiny_clap(directory: str | Path) -> Path:
    """Save a seeded random tiny ClapModel + ClapProcessor (BPE tokenizer, 48 kHz) to ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizerFast,
    )

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    # A byte-level BPE vocabulary learnt on the fly, as RoBERTa's (CLAP's text tower is a RoBERTa).
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        [*_CORPUS, "a dog barking", "a man speaking", "rain on a window", "a woman speaking"],
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
    )
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=tok,
        model_max_length=64,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    extractor = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=CLAP_SAMPLE_RATE,
        max_length_s=CLAP_MAX_LENGTH_S,
        truncation="rand_trunc",
    )
    text = ClapTextConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64 + 2,  # RoBERTa positions start after the padding index
        pad_token_id=tok.token_to_id("<pad>"),
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
    )
    audio = ClapAudioConfig(
        num_mel_bins=16,
        spec_size=64,  # 64 / 16 mel bins: 4 time strips of 64 frames (2 s at 48 kHz is 201 frames)
        window_size=4,
        patch_size=4,
        patch_stride=(4, 4),
        depths=(1, 1),
        num_attention_heads=(2, 2),
        patch_embeds_hidden_size=16,
        hidden_size=32,  # patch_embeds_hidden_size * 2 ** (len(depths) - 1)
        enable_fusion=False,
    )
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=24)
    torch.manual_seed(SEED)
    model = ClapModel(config)
    model.save_pretrained(out)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    return out
