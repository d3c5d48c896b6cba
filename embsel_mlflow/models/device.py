"""Choosing the torch device a model runs on, and the precision it runs at there.

``model.precision=auto`` resolves here, once, to what this hardware runs fastest without
changing the model's range: bf16 on a CUDA GPU that has it, else fp32; on a CPU, bf16 only where
the CPU computes bf16 natively (``avx512_bf16`` / ``amx_bf16`` in /proc/cpuinfo, ``bf16`` on Arm)
*and* a short matmul probe finds it faster than fp32. Without native support, bf16 is emulated
at a fraction of fp32's speed (0.3 against 78 GFLOP/s on an AVX2-only machine), so an explicit
``model.precision=bf16`` there logs one warning with the measured factor. The probe's result is
kept per CPU under the cache dir (``hardware/``), so it runs once per machine.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from embsel_mlflow.config import Precision
from embsel_mlflow.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from embsel_mlflow.config import ModelConfig

log = logging.getLogger("embsel.model")

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str) -> str:
    """Turn ``model.device`` into a concrete torch device string.

    ``auto`` picks cuda if available, else mps if available, else cpu. An explicit device
    that this machine does not have is refused up front rather than failing mid-run.
    """
    import torch

    name = name.strip().lower()
    if not _DEVICE_PATTERN.match(name):
        raise ConfigError(f"model.device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps")

    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name.startswith("cuda"):
        if not cuda:
            raise ModelError(
                f"model.device={name} but CUDA is not available here; set model.device=auto or cpu"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelError(
                f"model.device={name} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                "set model.device=cuda:0 or auto"
            )
    if name == "mps" and not mps:
        raise ModelError("model.device=mps but MPS is not available here; set model.device=auto or cpu")
    return name


# CPU flags (x86 /proc/cpuinfo "flags", Arm "Features") that compute a half precision natively.
NATIVE_FLAGS = {
    Precision.bf16: frozenset({"avx512_bf16", "amx_bf16", "bf16"}),
    Precision.fp16: frozenset({"avx512_fp16", "amx_fp16", "asimdhp"}),
}
# auto picks a half precision on a CPU only if the probe finds it at least this much faster.
_AUTO_MIN_SPEEDUP = 1.1
# The probe: an MLP-sized matmul (32 tokens x 384 -> 1536, MiniLM's feed-forward), alternated
# between fp32 and the half precision for about this long (emulated bf16: two rounds, ~0.25 s).
_PROBE_SHAPE = (32, 384, 1536)
_PROBE_SECONDS = 0.15
_PROBE_MAX_ROUNDS = 50
_warned: set[tuple[str, str]] = set()


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo is not readable, e.g. macOS)."""
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name.strip().lower() in ("flags", "features"):
                return frozenset(value.split())
    return frozenset()


def native_on_cpu(precision: Precision, flags: Iterable[str]) -> bool:
    """Whether a CPU with ``flags`` computes ``precision`` natively (fp32 always)."""
    return precision is Precision.fp32 or bool(NATIVE_FLAGS.get(precision, frozenset()) & set(flags))


def resolve_precision(cfg: ModelConfig, *, flags: Iterable[str] | None = None) -> Precision:
    """The concrete precision ``cfg`` runs at (``auto`` resolved; never ``auto``).

    ``flags``: the CPU's feature flags (default: read from /proc/cpuinfo), a parameter so that
    tests can stand for a CPU without native bf16. An explicit half precision on a CPU that
    emulates it is kept (the user asked for it) with one warning giving the measured slowdown.
    """
    precision = Precision(cfg.precision)
    backend = str(getattr(cfg.variant.backend, "value", cfg.variant.backend))
    quantization = str(getattr(cfg.variant.quantization, "value", cfg.variant.quantization))
    if precision is Precision.auto and (backend == "onnx" or quantization == "int8_dynamic"):
        return Precision.fp32  # ONNX runs its fp32 export; int8_dynamic quantizes fp32 weights
    if precision is Precision.fp32 or (precision is not Precision.auto and backend == "onnx"):
        return precision  # (ONNX refuses a half precision itself, with its own message)
    device = resolve_device(cfg.device)
    if device.startswith("cuda"):
        if precision is not Precision.auto:
            return precision
        import torch

        return Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp32
    if device != "cpu":  # mps: fp32 unless asked (its bf16 support varies by OS release)
        return Precision.fp32 if precision is Precision.auto else precision
    flags = cpu_flags() if flags is None else frozenset(flags)
    if precision is Precision.auto:
        if not native_on_cpu(Precision.bf16, flags):
            return Precision.fp32
        return Precision.bf16 if probe_slowdown(Precision.bf16) * _AUTO_MIN_SPEEDUP <= 1 else Precision.fp32
    if not native_on_cpu(precision, flags) and (precision.value, device) not in _warned:
        _warned.add((precision.value, device))
        slowdown = probe_slowdown(precision)
        measured = f"{slowdown:.1f}x slower" if slowdown >= 1 else f"{1 / slowdown:.1f}x faster"
        log.warning(
            "model.precision=%s on a CPU without native %s (no %s): a %s matmul measured %s than fp32 "
            "here; set model.precision=fp32 or auto",
            precision.value,
            precision.value,
            "/".join(sorted(NATIVE_FLAGS[precision] - {"bf16", "asimdhp"})),
            precision.value,
            measured,
        )
    return precision


@functools.cache
def probe_slowdown(precision: Precision, cache_dir: Path | None = None) -> float:
    """How many times longer a matmul takes at ``precision`` than at fp32 on this CPU (< 1: faster).

    Measured once per CPU (model, flags, torch version and threads) and kept under
    ``<cache dir>/hardware/``; an unreadable or unwritable file only means measuring again.
    """
    import torch

    facts = {
        "cpu": cpu_model(),
        "flags": sorted(cpu_flags()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": _PROBE_SHAPE,
        "precision": precision.value,
    }
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    path = (cache_dir or _default_cache_dir()) / "hardware" / f"matmul-{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return float(json.loads(path.read_text(encoding="utf-8"))["slowdown"])
    slowdown = _time_matmul(precision)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"slowdown": slowdown, **facts}), encoding="utf-8")
        os.replace(tmp, path)
    return slowdown


def _default_cache_dir() -> Path:
    """models/cache.default_cache_dir's rule (importing it would close a cycle: cache -> identity -> here)."""
    if os.environ.get("EMBSEL_CACHE_DIR"):
        return Path(os.environ["EMBSEL_CACHE_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("embsel"))


def _time_matmul(precision: Precision) -> float:
    """Best-of-rounds time at ``precision`` over fp32, the two alternated so load hits both alike."""
    import torch

    dtype = {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}[precision]
    tokens, width, hidden = _PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(tokens, width, generator=generator)
    weights = torch.randn(hidden, width, generator=generator)
    pairs = [(inputs, weights), (inputs.to(dtype), weights.to(dtype))]
    best = [float("inf"), float("inf")]
    started = time.perf_counter()
    with torch.inference_mode():
        for x, w in pairs:  # warm-up (first-call kernel selection)
            torch.nn.functional.linear(x, w)
        for rounds in range(1, _PROBE_MAX_ROUNDS + 1):
            for side, (x, w) in enumerate(pairs):
                tick = time.perf_counter()
                torch.nn.functional.linear(x, w)
                best[side] = min(best[side], time.perf_counter() - tick)
            if rounds >= 2 and time.perf_counter() - started > _PROBE_SECONDS:
                break
    return best[1] / max(best[0], 1e-9)


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` says."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()
