"""Script mix (Unicode script of letters) and a language estimate from py3langid's bundled model."""

from __future__ import annotations

import unicodedata
from collections import Counter

# Unicode character names start with the script for these (LATIN SMALL LETTER A, CJK UNIFIED ...).
_SCRIPTS = (
    "LATIN", "CYRILLIC", "GREEK", "ARABIC", "HEBREW", "DEVANAGARI", "BENGALI", "THAI", "HANGUL",
    "HIRAGANA", "KATAKANA", "CJK", "ARMENIAN", "GEORGIAN", "TAMIL", "ETHIOPIC",
)  # fmt: skip


def script_mix(texts: list[str]) -> dict[str, float]:
    """Share of letters per script over ``texts`` (e.g. {"LATIN": 0.97, "CYRILLIC": 0.03})."""
    counts: Counter[str] = Counter()
    for text in texts:
        for char in text:
            if char.isalpha():
                counts[_script(char)] += 1
    total = sum(counts.values())
    return {script: count / total for script, count in counts.most_common()} if total else {}


def _script(char: str) -> str:
    if char.isascii():
        return "LATIN"
    first = unicodedata.name(char, "OTHER").split(" ", 1)[0]
    return first if first in _SCRIPTS else "OTHER"


def language_mix(texts: list[str]) -> dict[str, float]:
    """Share of ``texts`` per detected language (ISO 639-1), from a small model shipped with py3langid."""
    if not texts:
        return {}
    from py3langid.langid import classify  # loads its model (~1 s) once per process

    counts = Counter(classify(text)[0] for text in texts)
    return {language: count / len(texts) for language, count in counts.most_common()}
