"""Push predictor: gradient-boosted trees (LightGBM) with Platt calibration.

The trees learn P(pushed | features known before the trainer starts) on a fit period; a
logistic map of their log-odds (Platt scaling), learned on the later validation period,
turns their scores into calibrated probabilities. The map is strictly monotone, so it keeps
the trees' ranking and thresholds stay fine-grained (isotonic maps make ties). Training is deterministic for a given seed (LightGBM ``deterministic`` mode,
one thread, fixed bagging seeds). Each prediction can be explained by the features that
contributed most to it (LightGBM ``pred_contrib``: additive log-odds contributions).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from optimizer.errors import OptimizerError

__all__ = ["PredictorConfig", "PushPredictor", "Contribution", "fit_predictor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorConfig:
    """Hyperparameters of the trees; the defaults work for corpora of a few hundred to 500k trainings.

    ``linear_weight``: share of a logistic regression on the same features in the score (log-odds
    averaged before calibration); 0 = trees alone.
    """

    seed: int = 0
    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 50
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    threads: int = 1
    linear_weight: float = 0.0


@dataclass(frozen=True)
class Contribution:
    """One feature's share of a decision: positive pushes the probability up."""

    feature: str
    value: float | None
    contribution: float


class PushPredictor:
    """A fitted booster plus its calibration map; ``predict`` returns calibrated P(push)."""

    def __init__(self, booster, columns: tuple[str, ...], calibration, config: PredictorConfig, linear=None):
        self.booster = booster
        self.columns = columns
        self.calibration = calibration
        self.config = config
        self.linear = linear

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated probability of the trees (blended with the linear model's, by log-odds)."""
        tree = self.booster.predict(X, num_threads=self.config.threads)
        if self.linear is None:
            return tree
        w = self.config.linear_weight
        z = (1 - w) * _logit(tree) + w * _logit(self.linear.predict(X))
        return 1.0 / (1.0 + np.exp(-z))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability that each training pushes a model."""
        raw = self.raw(X)
        if self.calibration is None:
            return raw
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * _logit(raw) + b)))

    def explain(self, X: np.ndarray, top: int = 3) -> list[list[Contribution]]:
        """Per row, the ``top`` features with the largest absolute contribution (log-odds)."""
        contrib = self.booster.predict(X, pred_contrib=True, num_threads=self.config.threads)[:, :-1]
        out = []
        for i in range(X.shape[0]):
            order = np.argsort(-np.abs(contrib[i]), kind="stable")[:top]
            out.append([
                Contribution(self.columns[j], None if np.isnan(X[i, j]) else float(X[i, j]),
                             float(contrib[i, j]))
                for j in order if contrib[i, j] != 0.0])
        return out

    def importance(self, top: int = 15) -> list[tuple[str, float]]:
        """Features by total gain, largest first."""
        gain = self.booster.feature_importance(importance_type="gain")
        order = np.argsort(-gain, kind="stable")[:top]
        return [(self.columns[j], float(gain[j])) for j in order if gain[j] > 0]


def fit_predictor(X_fit: np.ndarray, y_fit: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                  columns: tuple[str, ...], config: PredictorConfig = PredictorConfig()) -> PushPredictor:
    """Fit trees on the fit period, stop early and calibrate on the validation period."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    y_fit = np.asarray(y_fit, dtype=float)
    y_val = np.asarray(y_val, dtype=float)
    if len(np.unique(y_fit)) < 2:
        raise OptimizerError(
            "the fit period holds only one outcome (all pushed or none pushed); "
            "move --train-until later or ingest more history")
    params = {
        "objective": "binary",
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_child_samples": config.min_child_samples,
        "bagging_fraction": config.subsample,
        "bagging_freq": 1 if config.subsample < 1 else 0,
        "feature_fraction": config.colsample_bytree,
        "lambda_l2": config.reg_lambda,
        "seed": config.seed,
        "bagging_seed": config.seed,
        "feature_fraction_seed": config.seed,
        "data_random_seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.threads,
        "verbosity": -1,
    }
    train = lgb.Dataset(X_fit, label=y_fit, feature_name=[f"f{i}" for i in range(len(columns))],
                        free_raw_data=False)
    callbacks = []
    valid_sets = []
    if len(y_val) and len(np.unique(y_val)) == 2 and config.early_stopping_rounds:
        valid_sets = [lgb.Dataset(X_val, label=y_val, reference=train)]
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, verbose=False))
    booster = lgb.train(params, train, num_boost_round=config.n_estimators,
                        valid_sets=valid_sets, callbacks=callbacks)
    linear = None
    if config.linear_weight > 0:
        from optimizer.baselines import fit_logistic

        linear = fit_logistic(X_fit, y_fit)
    predictor = PushPredictor(booster, tuple(columns), None, config, linear)
    calibration = None
    if len(y_val) >= 20 and len(np.unique(y_val)) == 2:
        raw = predictor.raw(X_val)
        lr = LogisticRegression(C=1e6, solver="lbfgs").fit(_logit(raw).reshape(-1, 1), y_val)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a > 0:   # a non-increasing map would invert the ranking: keep the raw scores then
            calibration = (a, b)
    log.info("fitted %d trees on %d trainings (%d features)", booster.num_trees(), len(y_fit), len(columns))
    predictor.calibration = calibration
    return predictor



def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
