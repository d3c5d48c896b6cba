"""Consistent mapping of label strings to integer class ids."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embsel_mlflow.evaluation.base import EvalTask


def label_ids(*label_lists: Iterable[str]) -> dict[str, int]:
    """Map every label to an id, in sorted order (numeric order when all labels are integers).

    Numeric order keeps class ids equal to the labels themselves for datasets that store
    integer labels as text, so classifiers see the classes in the same order as MTEB does.
    """
    labels = {str(label) for labels in label_lists for label in labels}

    def is_int(text: str) -> bool:
        return text.strip().lstrip("+-").isdigit()

    key = (lambda text: int(text)) if labels and all(is_int(t) for t in labels) else None
    return {label: index for index, label in enumerate(sorted(labels, key=key))}


def case_clashes(task: EvalTask, labels: Iterable[str], split: str) -> None:
    """Warn (on ``task``) about distinct labels that differ only in case: counted as separate classes."""
    groups: dict[str, set[str]] = {}
    for label in labels:
        groups.setdefault(str(label).casefold(), set()).add(str(label))
    clashes = [sorted(group) for group in groups.values() if len(group) > 1]
    if clashes:
        task.warn(
            "labels_differ_in_case",
            f"{len(clashes)} group(s) of {split} labels differ only in case, e.g. {clashes[0]}; "
            "they are counted as different classes",
            len(clashes),
        )
