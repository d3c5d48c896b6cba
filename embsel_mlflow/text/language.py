"""Script mix (Unicode script of letters) and a language estimate from py3langid's bundled model."""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("embsel.profile")
# The arrays of py3langid's model (an LZMA-packed npz) unpacked once as .npy files under the user
# cache dir: decompressing 68 MB cost ~0.6 s per process, memory-mapping them costs ~0.05 s.
_MODEL_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")

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
    identifier = language_identifier()
    counts = Counter(identifier.classify(text)[0] for text in texts)
    return {language: count / len(texts) for language, count in counts.most_common()}


@functools.cache
def language_identifier() -> Any:
    """py3langid's identifier, loaded once per process from its arrays unpacked in the user cache dir.

    Where the cache dir cannot be written, py3langid's own (slower) loader is used.
    """
    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    packed = MODEL_DIR / MODEL_FILE
    try:
        arrays = _unpacked_model(packed)
    except OSError as exc:
        log.debug("language model not cached (%s): loading it from %s", exc, packed)
        return LanguageIdentifier.from_model_file(packed)
    return LanguageIdentifier(
        np.asarray(arrays["ptc"]),
        np.asarray(arrays["pc"]),
        arrays["classes"].tolist(),
        _as_stdlib_array(arrays["nextmove"]),
        arrays["out_feat"].tolist(),
        tk_row=_as_stdlib_array(arrays["nextmove_row"]),
    )  # what LanguageIdentifier.from_model_file builds from the same arrays


def _unpacked_model(packed: Path) -> dict[str, Any]:
    """The model's arrays, memory-mapped from their unpacked copy."""
    import numpy as np

    target = unpacked_model_dir(packed)
    return {
        name: np.load(target / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in _MODEL_ARRAYS
    }


def unpacked_model_dir(packed: Path | None = None) -> Path:
    """``<cache>/models/py3langid/<size>-<mtime>/``: the model's arrays as .npy files (unpacked once)."""
    import lzma
    import os
    import shutil
    import tempfile

    import numpy as np

    from embsel_mlflow.models.cache import default_cache_dir

    if packed is None:
        from py3langid.langid import MODEL_DIR, MODEL_FILE

        packed = MODEL_DIR / MODEL_FILE
    stat = packed.stat()
    target = default_cache_dir() / "models" / "py3langid" / f"{stat.st_size}-{stat.st_mtime_ns}"
    if (target / "out_feat.npy").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent))  # concurrent processes: each its own
    with tempfile.TemporaryFile() as npz:
        with lzma.open(packed) as source:
            shutil.copyfileobj(source, npz, length=1 << 20)
        npz.seek(0)
        with np.load(npz, allow_pickle=False) as data:
            for name in _MODEL_ARRAYS:
                np.save(staging / f"{name}.npy", data[name], allow_pickle=False)
    try:
        os.replace(staging, target)  # atomic: readers see all arrays or none
    except OSError:  # another process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _as_stdlib_array(values: Any) -> Any:
    """A numpy unsigned int array as the stdlib ``array`` py3langid walks its automaton with."""
    from array import array

    import numpy as np

    out = array({2: "H", 4: "I", 8: "L"}[values.dtype.itemsize])
    out.frombytes(np.ascontiguousarray(values).tobytes())
    return out
