"""``conf/profile/``: what ``embsel profile`` measures (``profiling/``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ProfileConfig:
    """What ``embsel profile`` measures and when a finding is raised (``embsel_mlflow.profiling``)."""

    # evaluate/select refuse a text model on image/audio path columns unless this is true
    allow_modality_mismatch: bool = False
    # evaluate/select/train link their data's profile to the run: found by data digest, else computed
    link: bool = True
    short_text_chars: int = 10  # texts shorter than this (characters) count as very short
    long_text_chars: int = 100_000  # a text longer than this is reported (likely a whole file)
    near_duplicate_threshold: float = 0.8  # char n-gram Jaccard
    near_duplicate_ngram: int = 5
    near_duplicate_num_perm: int = 64
    near_duplicate_max_texts: int = 2000  # distinct texts compared per column (evenly spaced)
    language_sample: int = 1000  # texts per column given to the language detector / script count
    # thresholds of warn findings
    duplicate_rate_warn: float = 0.05
    empty_rate_warn: float = 0.01
    near_duplicate_rate_warn: float = 0.05
    short_text_rate_warn: float = 0.2
    truncation_rate_warn: float = 0.05
    unknown_token_rate_warn: float = 0.01
    imbalance_ratio_warn: float = 10.0  # largest / smallest class
    rare_class_min: int = 5  # classes with fewer examples are "rare"
    tokenize_batch_size: int = 4096
    # image/audio columns: headers of every file are read; this many files per column (evenly
    # spaced) are also checked whole (images) or decoded for their level and peaks (audio)
    media_sample: int = 500
    silent_dbfs: float = -60.0  # a clip whose RMS level is below this (dB full scale) is silent
    silent_rate_warn: float = 0.05  # share of sampled clips that are silent
    clipped_rate_warn: float = 0.05  # share of sampled clips that rest at full scale (clipped)
    report_html: bool = True
    show_progress: bool = True
