"""A domain classifier: can a model tell current texts from reference ones? Cross-validated ROC AUC.

The p-value: in each fold the classifier never saw the held-out points, so under "no drift"
their scores are independent of their labels and the fold's AUC follows the Mann-Whitney null
exactly (a one-sided z-score that is standard normal). The folds' z-scores are combined with
Stouffer's ``sum z / sqrt(k)``. The folds share training data; under the null that dependence
is negative (a fold whose training set leans one way is tested on points that lean the other:
the known pessimistic bias of stratified cross-validation), which makes the combination
conservative, not anti-conservative. The tests check the false-alarm rate on Gaussians and
benchmarks/monitor_calibration.py on 20 no-drift splits of Banking77.
"""

from __future__ import annotations

import numpy as np

from embsel_mlflow.monitoring.results import DriftResult


def classifier_test(
    reference: np.ndarray,
    current: np.ndarray,
    alpha: float,
    *,
    folds: int = 5,
    regularization: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> DriftResult:
    """Stratified k-fold logistic regression (standardised features); mean held-out ROC AUC."""
    from scipy.stats import mannwhitneyu, norm
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.concatenate([reference, current]).astype(np.float64)
    labels = np.concatenate([np.zeros(len(reference), dtype=int), np.ones(len(current), dtype=int)])
    folds = max(2, min(int(folds), len(reference), len(current)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs: list[float] = []
    z_scores: list[float] = []
    for train, test in splitter.split(features, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=max_iter))
        model.fit(features[train], labels[train])
        scores = model.decision_function(features[test])
        held_out = labels[test]
        aucs.append(float(roc_auc_score(held_out, scores)))
        p_fold = mannwhitneyu(scores[held_out == 1], scores[held_out == 0], alternative="greater").pvalue
        z_scores.append(float(norm.isf(np.clip(p_fold, 1e-300, 1.0))))
    combined = float(np.sum(z_scores) / np.sqrt(len(z_scores)))
    details = {"folds": float(folds), "auc_min": min(aucs), "auc_max": max(aucs), "z": combined}
    return DriftResult("classifier", float(np.mean(aucs)), float(norm.sf(combined)), alpha, details)
