"""Push predictor: boosted stumps (LightGBM) averaged with a logistic regression, Platt-calibrated.

The score is the average, in log-odds, of two models of P(pushed | features known before the
trainer starts): gradient-boosted trees of one split each (``num_leaves = 2``: an additive
model, one learned curve per feature, which cannot memorize interactions of a few hundred
trainings) and a logistic regression on the same features (a straight line per feature, which
extrapolates where the curves are flat). The number of boosting rounds is chosen on a
validation period (the last part of the known past) by early stopping, and a logistic map of
the blended log-odds (Platt scaling) learned there turns scores into calibrated
probabilities; then both models are refitted on the whole known past (``refit_all``), so
that the trainings closest to the decisions are learned from too, and keep that map. The
map is strictly monotone: it keeps the ranking and thresholds stay fine-grained. Training
is deterministic for a given seed (LightGBM ``deterministic`` mode, one thread, fixed
seeds). Each prediction is explained by the features that contributed most to its log-odds
(LightGBM ``pred_contrib`` for the trees, coefficient x standardized value for the line).

Why this shape (docs/pruning.md, "Model"): on 16 tuning corpora deeper trees (15 leaves)
fitted on the fit period alone ranked below the logistic regression on 14 of them; the
blend ranked above it on 15.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from optimizer.errors import OptimizerError
from optimizer.pruning.logistic import fit_logistic

__all__ = ["PredictorConfig", "PushPredictor", "Contribution", "fit_predictor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorConfig:
    """Hyperparameters of the model; the defaults work for corpora of a few hundred to 500k trainings.

    ``linear_weight``: share of a logistic regression on the same features in the score (log-odds
    averaged before calibration); 0 = trees alone. ``num_leaves = 2``: stumps (an additive
    model); 15 with ``linear_weight = 0`` and ``refit_all = False`` is the earlier predictor.
    ``refit_all``: after early stopping and calibration on the validation period, refit both
    models on fit + validation with the chosen number of rounds.
    """

    seed: int = 0
    n_estimators: int = 1500
    learning_rate: float = 0.05
    num_leaves: int = 2
    min_child_samples: int = 50
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    threads: int = 1
    linear_weight: float = 0.5
    refit_all: bool = True


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
        self.weights: np.ndarray | None = None   # mean |contribution| per feature over the known past

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

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per row and feature, its additive share of the calibrated log-odds (without the intercepts)."""
        contrib = self.booster.predict(X, pred_contrib=True, num_threads=self.config.threads)[:, :-1]
        if self.linear is not None:
            w = self.config.linear_weight
            contrib = (1 - w) * contrib + w * self.linear.contributions(X)
        return contrib if self.calibration is None else self.calibration[0] * contrib

    def explain(self, X: np.ndarray, top: int = 3) -> list[list[Contribution]]:
        """Per row, the ``top`` features with the largest absolute contribution (log-odds)."""
        contrib = self.contributions(X)
        out = []
        for i in range(X.shape[0]):
            order = np.argsort(-np.abs(contrib[i]), kind="stable")[:top]
            out.append([
                Contribution(self.columns[j], None if np.isnan(X[i, j]) else float(X[i, j]),
                             float(contrib[i, j]))
                for j in order if contrib[i, j] != 0.0])
        return out

    def importance(self, top: int = 15) -> list[tuple[str, float]]:
        """Features by their mean absolute share of the calibrated log-odds over the trainings
        the model learned from (trees and line together, as ``contributions``), largest first.
        (The trees' gain alone would hide what the logistic half decides.)"""
        weights = getattr(self, "weights", None)    # None in a policy saved before it existed
        weight = (weights if weights is not None
                  else self.booster.feature_importance(importance_type="gain").astype(float))
        order = np.argsort(-weight, kind="stable")[:top]
        return [(self.columns[j], float(weight[j])) for j in order if weight[j] > 0]


def fit_predictor(X_fit: np.ndarray, y_fit: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                  columns: tuple[str, ...], config: PredictorConfig = PredictorConfig(),
                  w_fit: np.ndarray | None = None, w_val: np.ndarray | None = None) -> PushPredictor:
    """Fit on the fit period, stop early and calibrate on the validation period, then refit on both.

    The rows are in time order: the validation period follows the fit period. ``w_fit`` and
    ``w_val``: per-row weights (None: 1), e.g. the inverse propensity of explored trainings in a
    history where pruned trainings were never observed, so that the rows stand for all of them.
    """
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
    train = lgb.Dataset(X_fit, label=y_fit, weight=w_fit, feature_name=[f"f{i}" for i in range(len(columns))],
                        free_raw_data=False)
    callbacks = []
    valid_sets = []
    if len(y_val) and len(np.unique(y_val)) == 2 and config.early_stopping_rounds:
        valid_sets = [lgb.Dataset(X_val, label=y_val, weight=w_val, reference=train)]
        callbacks.append(lgb.early_stopping(config.early_stopping_rounds, verbose=False))
    booster = lgb.train(params, train, num_boost_round=config.n_estimators,
                        valid_sets=valid_sets, callbacks=callbacks)

    linear = fit_logistic(X_fit, y_fit, sample_weight=w_fit) if config.linear_weight > 0 else None
    predictor = PushPredictor(booster, tuple(columns), None, config, linear)
    calibration = None
    if len(y_val) >= 20 and len(np.unique(y_val)) == 2:
        raw = predictor.raw(X_val)
        lr = LogisticRegression(C=1e6, solver="lbfgs").fit(_logit(raw).reshape(-1, 1), y_val, sample_weight=w_val)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a > 0:   # a non-increasing map would invert the ranking: keep the raw scores then
            calibration = (a, b)
    refit = config.refit_all and len(y_val) > 0
    X_known = np.concatenate([X_fit, X_val]) if refit else X_fit
    if refit:
        # the same model, with the rounds early stopping chose, learned from the whole known past
        X_all, y_all = X_known, np.concatenate([y_fit, y_val])
        w_all = (None if w_fit is None and w_val is None else
                 np.concatenate([np.ones(len(y_fit)) if w_fit is None else w_fit,
                                 np.ones(len(y_val)) if w_val is None else w_val]))
        rounds = booster.best_iteration if booster.best_iteration > 0 else booster.num_trees()
        booster = lgb.train(params, lgb.Dataset(X_all, label=y_all, weight=w_all,
                                                feature_name=[f"f{i}" for i in range(len(columns))]),
                            num_boost_round=max(rounds, 1))
        predictor.booster = booster
        if linear is not None:
            predictor.linear = fit_logistic(X_all, y_all, sample_weight=w_all) or linear
    log.info("fitted %d trees on %d trainings (%d features)", booster.num_trees(),
             len(X_known), len(columns))
    predictor.calibration = calibration
    predictor.weights = np.abs(predictor.contributions(X_known)).mean(axis=0)
    return predictor



def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
