"""model.precision=auto and the warning for emulated bf16: models/device.resolve_precision.

The CPU's flags are a parameter, so both kinds of CPU are tested on whichever this one is; the
matmul probe runs for real (its verdict is read back, never assumed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from embsel_mlflow.config import ModelConfig, Precision
from embsel_mlflow.models import device
from embsel_mlflow.models.device import cpu_flags, native_on_cpu, probe_slowdown, resolve_precision

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
WITH_BF16 = AVX2_ONLY | {"avx512f", "avx512_bf16"}


def _cfg(precision: str, **variant: str) -> ModelConfig:
    cfg = ModelConfig(name="test", name_or_path="unused", device="cpu", precision=Precision(precision))
    for key, value in variant.items():
        setattr(cfg.variant, key, value)
    return cfg


@pytest.fixture(autouse=True)
def _fresh_memo() -> None:
    """Each test sees the probe and the once-per-process warning afresh (its own cache dir too)."""
    probe_slowdown.cache_clear()
    device._warned.clear()


def _probe_files(cache: Path) -> list[Path]:
    return sorted((cache / "hardware").glob("matmul-*.json"))


def test_auto_is_fp32_on_a_cpu_without_native_bf16_and_runs_no_probe(tmp_path: Path) -> None:
    assert resolve_precision(_cfg("auto"), flags=AVX2_ONLY) is Precision.fp32
    assert _probe_files(tmp_path / "embsel-cache") == []  # nothing timed: the flags decide


def test_auto_on_a_cpu_with_native_bf16_follows_the_measured_probe(tmp_path: Path) -> None:
    chosen = resolve_precision(_cfg("auto"), flags=WITH_BF16)
    (kept,) = _probe_files(tmp_path / "embsel-cache")
    slowdown = json.loads(kept.read_text())["slowdown"]
    assert slowdown > 0
    assert chosen is (Precision.bf16 if slowdown * 1.1 <= 1 else Precision.fp32)
    # memoised per CPU: a new process (cache cleared) reads the file instead of timing again
    probe_slowdown.cache_clear()
    kept.write_text(json.dumps({"slowdown": 5.0}))
    assert resolve_precision(_cfg("auto"), flags=WITH_BF16) is Precision.fp32


def test_auto_is_fp32_where_the_backend_runs_fp32_only() -> None:
    assert resolve_precision(_cfg("auto", backend="onnx"), flags=WITH_BF16) is Precision.fp32
    assert resolve_precision(_cfg("auto", quantization="int8_dynamic"), flags=WITH_BF16) is Precision.fp32


def test_explicit_bf16_without_native_support_warns_once_with_the_measured_factor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="embsel.model"):
        for _ in range(3):  # the encoder and the identity both resolve: still one line
            assert resolve_precision(_cfg("bf16"), flags=AVX2_ONLY) is Precision.bf16
    (record,) = [r for r in caplog.records if "model.precision=bf16" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message
    assert "without native bf16" in message and "avx512_bf16" in message
    factor = probe_slowdown(Precision.bf16)
    assert f"{factor:.1f}x slower than fp32" in message or f"{1 / factor:.1f}x faster" in message


def test_explicit_bf16_with_native_support_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="embsel.model"):
        assert resolve_precision(_cfg("bf16"), flags=WITH_BF16) is Precision.bf16
        assert resolve_precision(_cfg("fp32"), flags=AVX2_ONLY) is Precision.fp32
    assert not [r for r in caplog.records if "precision" in r.getMessage()]


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16\n\nflags : other\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_flags(str(x86)) == {"fpu", "avx2", "amx_bf16"}
    assert native_on_cpu(Precision.bf16, cpu_flags(str(x86)))
    assert native_on_cpu(Precision.bf16, cpu_flags(str(arm)))
    assert not native_on_cpu(Precision.bf16, AVX2_ONLY)
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_auto_shares_identity_and_weights_dtype_with_what_it_resolves_to(tiny_st_dir: Path) -> None:
    import torch

    from embsel_mlflow.models import load_encoder
    from embsel_mlflow.models.cache import cache_model_key

    def config(precision: str) -> ModelConfig:
        return ModelConfig(
            name="t", name_or_path=str(tiny_st_dir), device="cpu", precision=Precision(precision)
        )

    auto = load_encoder(config("auto"))
    concrete = resolve_precision(config("auto"))
    explicit = load_encoder(config(concrete.value))
    assert auto.identity["precision"] == concrete.value
    assert cache_model_key(auto.identity, auto.source) == cache_model_key(explicit.identity, explicit.source)
    dtypes = {Precision.fp32: torch.float32, Precision.bf16: torch.bfloat16}
    assert auto.model.dtype == dtypes[concrete]
