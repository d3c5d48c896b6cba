"""Corpus encoding on a Ray cluster: a data config's texts into the embedding cache (``embsel embed``)."""

from embsel_mlflow.encoding.ray_corpus import BatchDone, EncodeReport, check_settings, encode_into_cache

__all__ = ["BatchDone", "EncodeReport", "check_settings", "encode_into_cache"]
