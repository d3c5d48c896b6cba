"""What changed, for a person: the current texts farthest from the reference, with their nearest
reference texts."""

from __future__ import annotations

import numpy as np

from embsel_mlflow.monitoring.sampling import subsample_indices

MAX_REFERENCE = 5000  # reference texts searched (fixed-seed sample): bounds the cost
MAX_CURRENT = 2000


def most_shifted(
    reference: np.ndarray,
    reference_texts: list[str],
    current: np.ndarray,
    current_texts: list[str],
    *,
    top: int = 10,
    neighbours: int = 3,
    seed: int = 0,
) -> list[dict]:
    """The ``top`` current texts with the lowest cosine similarity to their nearest reference text."""
    if top < 1:
        return []
    ref_rows = subsample_indices(len(reference), MAX_REFERENCE, seed)
    cur_rows = subsample_indices(len(current), MAX_CURRENT, seed + 1)
    similarity = _unit(current[cur_rows]) @ _unit(reference[ref_rows]).T  # current x reference
    k = min(neighbours, len(ref_rows))
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    nearest_sim = np.take_along_axis(similarity, nearest, axis=1)
    order = np.argsort(-nearest_sim, axis=1)
    nearest, nearest_sim = np.take_along_axis(nearest, order, 1), np.take_along_axis(nearest_sim, order, 1)
    shifted = np.argsort(nearest_sim[:, 0], kind="stable")[:top]
    return [
        {
            "text": current_texts[cur_rows[row]],
            "nearest_similarity": float(nearest_sim[row, 0]),
            "neighbours": [
                {"text": reference_texts[ref_rows[col]], "similarity": float(sim)}
                for col, sim in zip(nearest[row], nearest_sim[row], strict=True)
            ],
        }
        for row in shifted
    ]


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def shifted_markdown(rows: list[dict]) -> str:
    """The table as markdown (a person reads it in the run's artifacts)."""
    lines = ["| # | current text | nearest reference texts (cosine) |", "|---|---|---|"]
    for i, row in enumerate(rows, 1):
        near = "<br>".join(f"{n['similarity']:.3f}: {_cell(n['text'])}" for n in row["neighbours"])
        lines.append(f"| {i} | {_cell(row['text'])} | {near} |")
    return "\n".join(lines) + "\n"


def _cell(text: str, limit: int = 200) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"
