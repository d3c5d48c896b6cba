"""The steps' one-line descriptions: ``embsel --help`` lists them; a step's ``--help`` opens with its own."""

from __future__ import annotations

STEP_SUMMARIES: dict[str, str] = {
    "evaluate": "score one embedding model on one dataset (retrieval, STS, classification, ...)",
    "runs": "`runs repair`: close RUNNING runs whose process is gone (killed or crashed) as KILLED",
    "select": "rank candidate models on your datasets: CIs, paired tests, cost, a registered champion",
    "train": "fine-tune a model on a dataset's train split: baseline vs tuned, checkpoints, a servable model",
    "profile": "understand your data: column types, duplicates, truncation per candidate, findings",
    "monitor": "watch new windows of text: calibrated embedding drift, text signals, quality alerts (exit 3)",
    "embed": "encode a dataset's texts into the embedding cache on a Ray cluster (Ray Data actor pool)",
    "cache": "show (info) or empty (clear) the embedding cache",
    "compare": "a table of runs (an experiment, a sweep, run ids)",
    "rerun": "replay a logged run and diff it against the original",
    "demo-data": "write an offline image (digits) or audio (spoken, espeak-ng) demo set with its CSVs",
}


def step_summary(step: str) -> str:
    """The one-line description ``embsel --help`` gives ``step``: the shared help text's header."""
    return STEP_SUMMARIES.get(step, "an embsel step")
