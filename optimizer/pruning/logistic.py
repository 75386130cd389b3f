"""A logistic regression on the pruning features: median imputation, standardization, logistic map.

Shared by the push predictor (the straight-line half of its blend) and the baselines (the
``logistic`` baseline), which is why it is a module of its own below both.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LogisticBaseline", "fit_logistic"]


class LogisticBaseline:
    """A fitted scikit-learn pipeline: median imputation, standardization, logistic regression."""

    def __init__(self, model):
        self.model = model

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(_finite(X))[:, 1]

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and feature, coefficient x standardized (imputed) value: its share of the log-odds."""
        imputer, scaler, lr = (step for _, step in self.model.steps)
        return scaler.transform(imputer.transform(_finite(X))) * lr.coef_[0]


def fit_logistic(X: np.ndarray, y: np.ndarray, *, C: float = 1.0,
                 sample_weight: np.ndarray | None = None) -> LogisticBaseline | None:
    """Fit the logistic baseline; None when the rows hold a single outcome (nothing to learn)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        return None
    model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                          LogisticRegression(C=C, max_iter=1000))
    fit_params = {} if sample_weight is None else {"logisticregression__sample_weight": sample_weight}
    model.fit(_finite(X), y, **fit_params)
    return LogisticBaseline(model)


def _finite(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float).copy()
    X[~np.isfinite(X)] = np.nan
    return X
