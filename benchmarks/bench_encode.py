"""Encoder.encode throughput vs raw SentenceTransformer.encode on the same loaded model.

    python benchmarks/bench_encode.py --model minilm --n-texts 1000 --repeats 5

Both paths run on the same model object and the same texts, interleaved (ours, reference,
ours, ...) after one warm-up each, so machine load drifts affect both alike. The bar: our
median throughput must be >= 0.97x the reference's.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BAR = 0.97


def load_texts(n: int) -> tuple[list[str], str]:
    """STS-B sentences from the shared data when present, else synthetic sentences."""
    shared = Path(os.environ.get("EMBSEL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    stsb = shared / "stsb" / "sts-train.csv"
    if stsb.is_file():
        texts: list[str] = []
        with stsb.open(encoding="utf-8") as handle:
            for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts.extend(row[5:7])  # sentence1, sentence2
                if len(texts) >= n:
                    return texts[:n], f"STS-B train sentences ({stsb})"
    words = ("the", "a", "man", "woman", "dog", "plays", "runs", "reads", "red", "big", "guitar", "park")
    synthetic = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(5 + i % 20)) for i in range(n)]
    return synthetic, "synthetic sentences"


def build_model_config(name: str, tmp: Path):
    from omegaconf import OmegaConf

    from embsel_mlflow.config import ModelConfig

    if name == "minilm":
        node = OmegaConf.merge(
            OmegaConf.structured(ModelConfig), OmegaConf.load(REPO_ROOT / "conf/model/minilm.yaml")
        )
        return OmegaConf.to_object(node)
    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_models import build_tiny_sentence_transformer

    return ModelConfig(name="tiny", name_or_path=str(build_tiny_sentence_transformer(tmp / "tiny")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["minilm", "tiny"], default="minilm")
    parser.add_argument("--n-texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from embsel_mlflow.models import load_encoder

    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_model_config(args.model, Path(tmp))
        cfg.device = args.device
        encoder = load_encoder(cfg)
    texts, origin = load_texts(args.n_texts)
    model, batch_size = encoder.model, cfg.batch_size

    def ours() -> None:
        encoder.encode(texts)

    def reference() -> None:
        model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)

    ours(), reference()  # warm-up: allocator, kernels, tokenizer caches
    timings: dict[str, list[float]] = {"ours": [], "reference": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", ours), ("reference", reference)):
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)

    rate = {name: len(texts) / statistics.median(times) for name, times in timings.items()}
    ratio = rate["ours"] / rate["reference"]
    print(f"model={cfg.name} device={encoder.device} texts={len(texts)} ({origin}) batch_size={batch_size}")
    print(f"repeats={args.repeats} torch_threads={_torch_threads()}")
    for name in ("ours", "reference"):
        per_run = ", ".join(f"{len(texts) / t:.0f}" for t in timings[name])
        print(f"{name:>9}: {rate[name]:8.1f} texts/s (median; runs: {per_run})")
    print(f"    ratio: {ratio:.3f} (ours/reference) -> {'PASS' if ratio >= BAR else 'FAIL'} (bar {BAR})")


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
