"""Consistent mapping of label strings to integer class ids."""

from __future__ import annotations

from collections.abc import Iterable


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
