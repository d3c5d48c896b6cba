"""Statistics of one image or audio column: sizes, formats, durations, rates, bad files, silence, clipping.

Headers are read for every row (width, height, format, mode; frames, rate, channels): cheap, and
what most questions need. The expensive part is bounded by ``profile.media_sample`` files, evenly
spaced and one at a time (nothing decoded is kept): images are checked whole (a truncated file
is found), audio is decoded at its own rate for its level (silent clips) and its peaks (clipping).
Values are paths relative to the data root (which they must not leave), or ``datasets``
Image/Audio cells (``{"bytes": ..., "path": ...}``).
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsel_mlflow.media import media_io
from embsel_mlflow.media.items import AUDIO, IMAGE
from embsel_mlflow.text.lengths import LengthSummary

if TYPE_CHECKING:
    import pandas as pd

    from embsel_mlflow.config import MediaConfig, ProfileConfig

# A clip is clipped when this share of its samples sits at full scale (|x| >= CLIP_LEVEL): a
# recording's loudest peaks touch full scale now and then; a clipped one rests there.
CLIP_LEVEL = 0.999
CLIPPED_SAMPLE_SHARE = 0.001
_EXAMPLES = 3  # values quoted per problem
PROBLEMS = ("missing", "outside_root", "empty", "unreadable", "over_limit", "corrupt")
_PROBLEM_WORDS = {
    "missing": "missing (empty cell or no such file)",
    "outside_root": "outside data.root (through '..', an absolute path or a symlink) or a URL",
    "empty": "empty (0 bytes or 0 samples)",
    "unreadable": "not readable as",
    "over_limit": "over a data.media limit",
    "corrupt": "corrupt or truncated",
}


@dataclass
class MediaStats:
    """What one media column holds; shares of silent/clipped clips are over the decoded sample."""

    modality: str  # image | audio
    rows: int
    readable: int  # rows whose header was read (and within the limits)
    problems: dict[str, int] = field(default_factory=dict)  # PROBLEMS -> rows
    examples: dict[str, list[str]] = field(default_factory=dict)  # problem -> first values
    formats: dict[str, int] = field(default_factory=dict)  # PNG / JPEG; WAV / FLAC ...
    checked: int = 0  # files checked whole (images) or decoded (audio), the sample
    # images
    width: LengthSummary | None = None
    height: LengthSummary | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> rows, the 10 most common
    modes: dict[str, int] = field(default_factory=dict)  # L, RGB, RGBA, P ...
    # audio
    duration_s: LengthSummary | None = None
    total_seconds: float = 0.0
    sample_rates: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    silent: int = 0
    clipped: int = 0

    @property
    def bad(self) -> int:
        return sum(self.problems.values())

    @property
    def bad_rate(self) -> float:
        return self.bad / self.rows if self.rows else 0.0

    @property
    def silent_rate(self) -> float:
        return self.silent / self.checked if self.checked and self.modality == AUDIO else 0.0

    @property
    def clipped_rate(self) -> float:
        return self.clipped / self.checked if self.checked and self.modality == AUDIO else 0.0

    def problem_line(self) -> str:
        """``3 missing (...), 1 corrupt or truncated``: the bad rows, by problem."""
        return ", ".join(
            f"{count} {_PROBLEM_WORDS[name]}{f' {self.modality}' if name == 'unreadable' else ''}"
            for name, count in self.problems.items()
            if count
        )

    def metrics(self) -> dict[str, float]:
        metrics = {"bad_media_rate": self.bad_rate, "readable": float(self.readable)}
        if self.width is not None and self.height is not None:
            metrics.update(
                width_min=self.width.min, width_median=self.width.median, width_max=self.width.max,
                height_min=self.height.min, height_median=self.height.median, height_max=self.height.max,
            )  # fmt: skip
        if self.duration_s is not None:
            metrics.update(
                duration_min=self.duration_s.min, duration_mean=self.duration_s.mean,
                duration_p95=self.duration_s.p95, duration_max=self.duration_s.max,
                total_seconds=self.total_seconds,
                silent_rate=self.silent_rate, clipped_rate=self.clipped_rate,
            )  # fmt: skip
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "bad": self.bad,
            "silent_rate": self.silent_rate,
            "clipped_rate": self.clipped_rate,
        }


def media_stats(
    series: pd.Series,
    modality: str,
    *,
    root: str | Path,
    cfg: ProfileConfig,
    limits: MediaConfig | None = None,
    keys: bool = False,
) -> tuple[MediaStats, pd.Series | None]:
    """The statistics of a column of ``modality`` (image or audio) values, and with ``keys`` the
    content hash of each readable row (indexed like ``series``): what identifies an example when
    the task embeds this column (leakage between splits, one item with two labels)."""
    import pandas as pd

    from embsel_mlflow.config import MediaConfig
    from embsel_mlflow.media.items import content_digest, file_digest

    limits = limits or MediaConfig()
    root_dir = Path(root).expanduser().resolve()
    values = series.tolist()
    stats = MediaStats(modality=modality, rows=len(values), readable=0)
    problems: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    headers: list[Any] = []
    sources: list[Any] = []  # what each readable row opens: a path or its bytes
    digests: dict[Any, str] = {}  # series index -> content hash, readable rows

    def bad(problem: str, value: Any) -> None:
        problems[problem] += 1
        shown = examples.setdefault(problem, [])
        if len(shown) < _EXAMPLES:
            shown.append(_name(value))

    for index, value in zip(series.index, values, strict=True):
        source, problem = _source(value, root_dir, limits)
        if problem:
            bad(problem, value)
            continue
        try:
            header = _header(source, modality, limits)
        except media_io.BadMediaFile as err:
            bad(_classify(err), value)
            continue
        headers.append(header)
        sources.append((source, value))
        if keys:  # the whole file is read once, as the data layer does for the cache key
            digest = content_digest(source) if isinstance(source, bytes) else file_digest(source)
            digests[index] = digest.hex()
    stats.readable = len(headers)
    if headers:  # no sizes or durations of nothing: absent, not zeros
        _summarise_headers(stats, headers)
    # the expensive part: a bounded, evenly spaced sample, one file at a time
    for position in _evenly_spaced(len(sources), cfg.media_sample):
        source, value = sources[position]
        stats.checked += 1
        try:
            if modality == IMAGE:
                media_io.check_image(_opener(source), max_pixels=limits.max_image_pixels)
            else:
                silent, clipped = _levels(_opener(source), cfg.silent_dbfs)
                stats.silent += silent
                stats.clipped += clipped
        except media_io.BadMediaFile:
            bad("corrupt", value)
    stats.problems = {name: problems[name] for name in PROBLEMS if problems[name]}
    stats.examples = examples
    return stats, (pd.Series(digests, dtype=object) if keys else None)


def _source(value: Any, root: Path, limits: MediaConfig) -> tuple[Any, str | None]:
    """(path or bytes to open, None), or (None, the problem) for a value that cannot be opened."""
    import os

    from embsel_mlflow.media.paths import resolve_inside

    if isinstance(value, dict):
        if value.get("bytes") is not None:
            data = bytes(value["bytes"])
            if not data:
                return None, "empty"
            return (data, None) if len(data) <= limits.max_file_mb * 1024**2 else (None, "over_limit")
        value = value.get("path")
    if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
        return None, "missing"
    try:
        path = resolve_inside(str(value).strip(), root)
    except ValueError:
        return None, "outside_root"
    try:
        size = os.stat(path).st_size
    except OSError:
        return None, "missing"
    if not path.is_file():
        return None, "missing"
    if size == 0:
        return None, "empty"
    if size > limits.max_file_mb * 1024**2:
        return None, "over_limit"
    return str(path), None


def _opener(source: Any) -> Any:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _header(source: Any, modality: str, limits: MediaConfig) -> Any:
    if modality == IMAGE:
        return media_io.image_header(_opener(source), max_pixels=limits.max_image_pixels)
    assert modality == AUDIO
    header = media_io.audio_header(_opener(source))
    if header.frames <= 0 or header.sample_rate <= 0:
        raise media_io.EmptyMedia("the clip is empty (0 samples)")
    if header.duration_s > limits.max_audio_seconds:
        raise media_io.OverLimit(f"{header.duration_s:.0f} s long")
    return header


def _classify(err: media_io.BadMediaFile) -> str:
    if isinstance(err, media_io.OverLimit):
        return "over_limit"
    if isinstance(err, media_io.EmptyMedia):
        return "empty"
    return "unreadable"


def _summarise_headers(stats: MediaStats, headers: list[Any]) -> None:
    import numpy as np

    stats.formats = _counts(str(h.format) for h in headers)
    if stats.modality == IMAGE:
        stats.width = LengthSummary.of(np.array([h.width for h in headers], dtype=np.float64))
        stats.height = LengthSummary.of(np.array([h.height for h in headers], dtype=np.float64))
        stats.sizes = dict(list(_counts(f"{h.width}x{h.height}" for h in headers).items())[:10])
        stats.modes = _counts(str(h.mode) for h in headers)
        return
    durations = np.array([h.duration_s for h in headers], dtype=np.float64)
    stats.duration_s = LengthSummary.of(durations)
    stats.total_seconds = float(durations.sum())
    stats.sample_rates = _counts(str(h.sample_rate) for h in headers)
    stats.channels = _counts(str(h.channels) for h in headers)


def _levels(source: Any, silent_dbfs: float) -> tuple[bool, bool]:
    """(silent, clipped) of one clip, decoded block by block at its own rate, all channels."""
    import numpy as np
    import soundfile

    squares, full_scale, samples = 0.0, 0, 0
    try:
        with soundfile.SoundFile(source) as sound:
            for block in sound.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                squares += float(np.square(block, dtype=np.float64).sum())
                full_scale += int((np.abs(block) >= CLIP_LEVEL).sum())
                samples += block.size
    except (soundfile.LibsndfileError, RuntimeError, OSError, EOFError) as err:
        raise media_io.BadMediaFile(f"corrupt or truncated audio ({err})") from None
    if samples == 0:
        raise media_io.BadMediaFile("no samples decoded")
    rms = (squares / samples) ** 0.5
    silent = rms < 10 ** (silent_dbfs / 20)
    return bool(silent), full_scale / samples >= CLIPPED_SAMPLE_SHARE


def _counts(values: Any) -> dict[str, int]:
    return dict(Counter(values).most_common())


def _evenly_spaced(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    step = count / max(1, limit)
    return sorted({int(i * step) for i in range(limit)})


def _name(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("path") or "<inline bytes>")
    return str(value)
