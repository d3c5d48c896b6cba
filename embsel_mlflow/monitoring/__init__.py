"""``embsel monitor``: embedding drift, text-level signals and quality alerts for new windows of text.

Plain numpy/scipy/scikit-learn functions (no MLflow, no Hydra): ``drift.detect_drift`` compares
reference and current embeddings with calibrated tests, ``text_signals`` reuses the profiling
code on the raw texts, ``quality`` compares a re-evaluated window with its baseline, and
``runner.monitor_window`` ties them together for one window.
"""
