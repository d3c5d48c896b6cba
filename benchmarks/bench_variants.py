"""Cheaper variants of one candidate, priced against its fp32 model in one process.

    python benchmarks/bench_variants.py                       # minilm on STS-B and SciFact (../shared/data)
    python benchmarks/bench_variants.py --variants "{precision: [bf16], embedding_dtype: [int8]}"
    python benchmarks/bench_variants.py --datasets stsb \
        --variants "{backend: [onnx], quantization: [none, int8_dynamic]}"   # needs the [onnx] extra

Quality: ``select_models`` with ``select.variants`` (every variant scored on the full test
sets, paired bootstrap against fp32; stored-embedding variants reuse the fp32 float output
through the embedding cache). Speed, per dataset: fp32 and each model-side variant encode the
same seeded random sample of the dataset's texts, in batches and as single queries,
*interleaved* (fp32, variant, fp32, variant, ...), so machine load hits both alike; the ratios
are fp32 time / variant time. Bars (issue 12): bf16 >= 2x throughput at
|delta| <= 0.002 on both datasets; int8 embeddings |delta| <= 0.001 at 4x fewer bytes; binary +
int8 rescoring >= 95% of fp32's SciFact nDCG@10; OpenVINO int8 >= 3.5x at |delta| <= 0.005.
ONNX (issue 12's measurement, no bar): fp32 1.6x at 0.0000, int8 dynamic 2.4x at -0.0015.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = "{precision: [bf16], quantization: [int8_static], embedding_dtype: [int8, binary]}"


def compose(candidate: str, datasets: list[str], variants: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from embsel_mlflow.config import SelectJobConfig
    from embsel_mlflow.config.store import register_configs

    register_configs([])
    overrides = [
        f"candidates=[{candidate}]",
        f"datasets=[{','.join(datasets)}]",
        f"select.variants={variants}",
    ]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base=None):
        cfg = hydra_compose("select", overrides)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SelectJobConfig), cfg))


def interleaved(fp32, variant, texts: list[str], rounds: int, singles: int) -> dict:
    """fp32 / variant time ratios of batch encoding and single-query latency, measured alternately.

    Each round encodes the whole sample in one call, as evaluation does: the encoder sorts it by
    length and batches it at the candidate's ``batch_size`` (the same for both models).
    """
    batch_times = {"fp32": [], "variant": []}
    single_times = {"fp32": [], "variant": []}
    models = {"fp32": fp32, "variant": variant}
    for model in models.values():  # warm-up: lazy init, allocator, a runtime's first inference
        model.encode(texts[:128])
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model.encode(texts)
            batch_times[name].append(time.perf_counter() - started)
        for text in texts[:singles]:
            for name, model in models.items():
                started = time.perf_counter()
                model.encode([text])
                single_times[name].append(time.perf_counter() - started)
    fp32_batch, variant_batch = sum(batch_times["fp32"]), sum(batch_times["variant"])
    return {
        "throughput_ratio": fp32_batch / variant_batch,
        "fp32_texts_per_second": rounds * len(texts) / fp32_batch,
        "variant_texts_per_second": rounds * len(texts) / variant_batch,
        "fp32_p50_ms": 1000 * statistics.median(single_times["fp32"]),
        "variant_p50_ms": 1000 * statistics.median(single_times["variant"]),
        "p50_ratio": statistics.median(single_times["fp32"]) / statistics.median(single_times["variant"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candidate", default="minilm")
    parser.add_argument("--datasets", default="stsb,scifact")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--texts", type=int, default=512, help="texts of each dataset encoded per round")
    parser.add_argument("--seed", type=int, default=0, help="seed of the texts' random sample")
    parser.add_argument("--singles", type=int, default=32, help="single-query encodes per round and model")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: a fresh temp dir)")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[key] = "1"
    sys.path.insert(0, str(REPO_ROOT))

    from embsel_mlflow.candidates import build_encoder
    from embsel_mlflow.config import CacheConfig, Precision, Quantization
    from embsel_mlflow.families import load_task_data
    from embsel_mlflow.models.cache import open_cache
    from embsel_mlflow.models.calibration import texts_of
    from embsel_mlflow.selection import select_models
    from embsel_mlflow.selection.efficiency import uncached
    from embsel_mlflow.selection.runner import default_loader

    job = compose(args.candidate, args.datasets.split(","), args.variants)
    job.evaluation.show_progress = False
    cache = open_cache(CacheConfig(dir=args.cache_dir or tempfile.mkdtemp(prefix="embsel-bench-variants-")))
    datasets = list(job.datasets.values())
    started = time.perf_counter()
    selection = select_models(
        job.candidates, job.datasets, job.select, job.evaluation, load_model=default_loader(cache, datasets)
    )
    quality_seconds = time.perf_counter() - started
    decision = selection.decision

    # a seeded random sample of each dataset's texts: the first texts of a file are one genre
    # (STS-B test opens with short image captions, on which bf16 gains least)
    samples = {}
    for dataset in datasets:
        texts = texts_of(load_task_data(dataset))
        samples[dataset.name] = random.Random(args.seed).sample(texts, min(args.texts, len(texts)))
    results: dict[str, dict] = {}
    baseline_name = next(iter(decision.baselines.values()), None)
    fp32_model = None
    for name, baseline in decision.baselines.items():
        row: dict = {"baseline": baseline, "scores": decision.scores[name], "deltas": {}}
        for dataset, comparison in decision.variant_deltas.get(name, {}).items():
            row["deltas"][dataset] = {"delta": -comparison.difference, "p": comparison.p_adjusted}
            base = decision.scores[baseline].get(dataset)
            if base:
                row["deltas"][dataset]["share_of_fp32"] = decision.scores[name][dataset] / base
        cost = decision.costs[name]
        row["bytes_per_vector"] = cost.bytes_per_vector
        row["memory_per_million_docs_mb"] = cost.memory_per_million_docs_mb
        row["model_size_mb"] = cost.model_size_mb
        row["violations"] = decision.violations.get(name, [])
        cfg = selection.run.candidates[name].config
        model_side = Precision(cfg.precision) is not Precision.fp32 or cfg.variant.backend != "torch"
        model_side = model_side or Quantization(cfg.variant.quantization) is not Quantization.none
        if model_side:
            if fp32_model is None:
                fp32_model = build_encoder(selection.run.candidates[baseline_name].config)
            # through the cache for its OpenVINO/ONNX export, timed without it (.inner)
            variant_model = uncached(build_encoder(cfg, cache=cache, calibration_data=datasets))
            row["speed"] = {
                dataset: interleaved(fp32_model, variant_model, sample, args.rounds, args.singles)
                for dataset, sample in samples.items()
            }
            del variant_model
        results[name] = row

    print(f"\nquality: {quality_seconds:.0f} s for {len(results)} variants x {len(datasets)} datasets")
    print(selection.markdown)
    print(
        "| variant | "
        + " | ".join(f"{d} (delta, p)" for d in decision.datasets)
        + " | B/vector | MB/1M docs | "
        + " | ".join(f"{d} throughput x fp32 (texts/s) | {d} p50 x fp32" for d in samples)
        + " |"
    )
    print("|---" * (len(decision.datasets) + 3 + 2 * len(samples)) + "|")
    for name, row in results.items():
        cells = []
        for dataset in decision.datasets:
            score = row["scores"].get(dataset, float("nan"))
            delta = row["deltas"].get(dataset)
            cells.append(
                f"{score:.5f}"
                + (
                    f" ({delta['delta']:+.5f}, p={delta['p']:.2g}, "
                    f"{100 * delta.get('share_of_fp32', float('nan')):.1f}%)"
                    if delta
                    else ""
                )
            )
        speeds = []
        for dataset in samples:
            speed = row.get("speed", {}).get(dataset)
            speeds.append(
                f"{speed['throughput_ratio']:.2f}x ({speed['fp32_texts_per_second']:.0f} vs "
                f"{speed['variant_texts_per_second']:.0f}) | {speed['p50_ratio']:.2f}x"
                if speed
                else "(same model) | -"
            )
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {row['bytes_per_vector']:.0f} | {row['memory_per_million_docs_mb']:,.1f} | "
            + " | ".join(speeds)
            + " |"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2, default=float))
        print(f"written {args.output}")


if __name__ == "__main__":
    main()
