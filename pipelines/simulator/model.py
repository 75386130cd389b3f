"""The generative model: what each simulated pipeline is, and what decides a training's fate.

Everything here is a pure function of a ``random.Random`` and plain numbers, so a corpus is
a deterministic function of its seed. docs/simulator.md explains every knob; the constants
below are the knobs.

Pipelines differ in cadence (hourly to weekly), lifetime, shape (Transform, Tuner,
InfraValidator, one to four trainers, a rolling window of the last k spans), data freshness,
data quality, how often code, hyperparameters and structure change, and a latent model quality.

A training's outcome depends on drivers that MLMD records before the trainer starts (data
anomalies, new data, code/hyperparameter/structure changes, recent blessing history) and on
latent state MLMD never records (data drift of the span, a slowly wandering model health);
the Bernoulli draw on top is the irreducible noise. ``push_probability`` is the exact
probability, under this model, that the training ends in a push: the oracle's ceiling.

Some runs redo work on unchanged data (pipelines with caching off, manual re-runs, cache-key
changes that change no recorded property): the ``P_CACHE_OFF`` ... ``P_CACHE_BUST_ALL`` knobs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = [
    "PipelineSpec",
    "Drivers",
    "Outcome",
    "OutcomeModel",
    "PipelineOutcome",
    "OUTCOME_MODELS",
    "DEFAULT_OUTCOME_MODEL",
    "draw_outcome_model",
    "outcome_model_for",
    "pipeline_outcome",
    "sample_pipeline",
    "outcome_probabilities",
    "CADENCES_H",
    "DURATION_MEDIAN_S",
]

# Cadence (hours between scheduled runs) and its weight across pipelines.
CADENCES_H = (1, 2, 3, 6, 12, 24, 48, 72, 168)
CADENCE_WEIGHTS = (0.008, 0.012, 0.03, 0.07, 0.14, 0.39, 0.14, 0.09, 0.12)
# Median seconds per component kind before the pipeline's size factor.
DURATION_MEDIAN_S = {
    "example_gen": 240.0, "statistics_gen": 150.0, "schema_gen": 25.0, "example_validator": 30.0,
    "transform": 600.0, "tuner": 5400.0, "trainer": 1800.0, "resolver": 0.03, "evaluator": 420.0,
    "model_validator": 300.0, "infra_validator": 240.0, "pusher": 20.0,
}
TRAINER_VARIANTS = ("wide", "deep", "gbdt", "linear")
TFX_VERSIONS = ("1.14.0", "1.15.1", "1.16.0", "1.17.1", "1.19.0", "1.21.0")

# Outcome model coefficients (log-odds of blessing).
ALPHA_MEAN, ALPHA_SD = 1.4, 1.3       # pipeline propensity: varies strongly between pipelines
BRANCH_SD = 0.6                        # each trainer variant differs from its pipeline
B_ANOMALY = -2.0                       # ExampleValidator found anomalies in the newest span
B_DRIFT = -1.1                         # latent drift of the newest span (not in MLMD)
B_NEW_DATA = 0.35                      # a fresh span (vs retraining on the same data)
B_STRUCTURE = -1.4                     # first training after a pipeline structure change
B_HISTORY = 1.6                        # (recent blessing rate - 0.6), last 5 trainings
HEALTH_PHI, HEALTH_SD = 0.85, 0.45     # latent AR(1) model health (not in MLMD)
CODE_EFFECT = (-0.45, 0.9)             # a code change shifts health by N(mean, sd)
HPARAM_EFFECT = (-0.3, 0.7)            # a hyperparameter change shifts health by N(mean, sd)
P_INFRA_FAIL = 0.06                    # InfraValidator rejects a blessed model
FAIL_CODE, FAIL_HPARAM, FAIL_STRUCTURE = 0.12, 0.05, 0.08

# Re-runs on unchanged data (redundant work that reuse could have skipped).
P_CACHE_OFF = 0.08                     # share of synchronous pipelines running with caching disabled
MANUAL_RERUN_BETA = (0.6, 30.0)        # per-pipeline chance that someone re-runs a finished run by hand
P_RETRY_AFTER_FAILURE = 0.35           # ... added when a trainer of the run failed (retry, unrelated failure)
P_RERUN_CACHE_OFF = 0.6                # a manual re-run disables the cache (else only what failed re-runs)
RERUN_DELAY_MIN = (5.0, 120.0)         # minutes after the run ends, uniform
CACHE_BUST_PER_DAY = (0.0, 0.0, 0.005, 0.01, 0.03)  # cache-key changes that change no recorded property
P_CACHE_BUST_ALL = 0.4                 # ... hitting every node (platform upgrade), else one node (its image)


@dataclass(frozen=True)
class PipelineSpec:
    """One simulated production pipeline (fixed for its lifetime; structure may still change)."""

    index: int
    name: str
    mode: str                     # sync | async
    cadence_h: int
    start_h: float                # hours after the corpus start
    end_h: float                  # abandoned (or corpus end)
    n_trainers: int
    window: int                   # trainers read the last `window` spans
    has_transform: bool
    has_tuner: bool
    has_infra_validator: bool
    has_evaluator: bool
    p_new_data: float             # chance a scheduled run finds a new span
    anomaly_rate: float
    drift_sd: float
    base_fail: float
    alphas: tuple[float, ...]     # per trainer branch
    code_per_day: float
    hparam_per_day: float
    structure_per_day: float
    size: float                   # duration scale
    tfx_version: str
    caching: bool = True          # False: every component executes on every run (sync only)
    p_manual_rerun: float = 0.0   # chance that a finished run is re-run by hand (sync only)
    cache_bust_per_day: float = 0.0  # rate of cache-key changes that do not change the work


@dataclass(frozen=True)
class Drivers:
    """What the trainer of one run faces. The first six are visible in MLMD before training.

    ``hour`` (UTC hour of the trainer's start) and ``runs_since_code_change`` are recorded by
    MLMD only implicitly (a timestamp, a history of code properties): no feature names them.
    ``cycle`` and ``shock`` are hidden, like ``drift`` and ``health``; they are 0 unless the
    outcome model gives them weight (``--outcome-model random``).
    """

    anomaly: bool
    new_data: bool
    code_change: bool
    hparam_change: bool
    structure_change: bool
    recent_bless_rate: float
    drift: float                  # hidden
    health: float                 # hidden
    hour: float = 0.0
    runs_since_code_change: int = 1_000_000
    cycle: float = 0.0            # hidden: the pipeline's periodic swing, in [-1, 1]
    shock: float = 0.0            # hidden: this training's own log-odds noise


OUTCOME_MODELS = ("default", "random")


@dataclass(frozen=True)
class OutcomeModel:
    """Coefficients of the log-odds of blessing (and of the latent health's dynamics).

    ``default`` is the fixed model above (the module constants); ``draw_outcome_model`` draws
    one from the family documented in docs/simulator.md. A coefficient of 0 switches its
    driver off. ``hetero_sd`` is the spread (log-scale) of per-pipeline multipliers on every
    driver coefficient, so that drivers matter more in some pipelines than in others.
    """

    name: str = "default"
    alpha_mean: float = ALPHA_MEAN
    alpha_sd: float = ALPHA_SD
    branch_sd: float = BRANCH_SD
    b_anomaly: float = B_ANOMALY
    b_drift: float = B_DRIFT
    b_new_data: float = B_NEW_DATA
    b_structure: float = B_STRUCTURE
    b_history: float = B_HISTORY
    b_health: float = 1.0
    health_phi: float = HEALTH_PHI
    health_sd: float = HEALTH_SD
    code_effect: tuple[float, float] = CODE_EFFECT
    hparam_effect: tuple[float, float] = HPARAM_EFFECT
    b_hour: float = 0.0            # x cos(2 pi (hour - hour_peak) / 24)
    hour_peak: float = 0.0
    b_code_age: float = 0.0        # x exp(-runs since the last code change / code_age_runs)
    code_age_runs: float = 4.0
    b_cycle: float = 0.0           # x sin(2 pi t / cycle_days + the pipeline's phase)
    cycle_days: float = 7.0
    shock_sd: float = 0.0          # per-training hidden noise on the log-odds
    hetero_sd: float = 0.0

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else (round(v, 6) if isinstance(v, float) else v))
                for k, v in self.__dict__.items()}


DEFAULT_OUTCOME_MODEL = OutcomeModel()


def draw_outcome_model(rng: random.Random) -> OutcomeModel:
    """One outcome model of the family: which drivers matter, how much, noise and heterogeneity.

    Each recorded driver is on with a probability (else 0) and, when on, has a magnitude drawn
    uniformly (signs as in the default model, except the new-data and hour effects, which may
    go either way); the drivers no feature names (hour of day, code age) and the hidden ones
    (a periodic swing, a per-training shock, the health's persistence and spread) are drawn
    the same way. See docs/simulator.md for the ranges.
    """
    on = lambda p: rng.random() < p  # noqa: E731
    return OutcomeModel(
        name="random",
        alpha_mean=rng.uniform(0.3, 2.2), alpha_sd=rng.uniform(0.4, 1.6), branch_sd=rng.uniform(0.2, 1.0),
        b_anomaly=-rng.uniform(0.3, 3.0) if on(0.8) else 0.0,
        b_drift=-rng.uniform(0.3, 2.0) if on(0.8) else 0.0,
        b_new_data=rng.uniform(-0.5, 1.0) if on(0.6) else 0.0,
        b_structure=-rng.uniform(0.3, 2.5) if on(0.7) else 0.0,
        b_history=rng.uniform(0.3, 2.5) if on(0.6) else 0.0,
        b_health=rng.uniform(0.3, 1.5),
        health_phi=rng.uniform(0.6, 0.97), health_sd=rng.uniform(0.2, 0.8),
        code_effect=(-rng.uniform(0.0, 0.9), rng.uniform(0.3, 1.2)),
        hparam_effect=(-rng.uniform(0.0, 0.6), rng.uniform(0.2, 1.0)),
        b_hour=rng.choice((-1, 1)) * rng.uniform(0.2, 1.2) if on(0.5) else 0.0, hour_peak=rng.uniform(0.0, 24.0),
        b_code_age=-rng.uniform(0.2, 1.5) if on(0.5) else 0.0, code_age_runs=rng.choice((2.0, 4.0, 8.0)),
        b_cycle=rng.uniform(0.2, 1.2) if on(0.5) else 0.0, cycle_days=rng.choice((3.5, 7.0, 14.0)),
        shock_sd=rng.uniform(0.0, 1.2),
        hetero_sd=rng.uniform(0.0, 0.8),
    )


def outcome_model_for(name: str, seed: int) -> OutcomeModel:
    """The outcome model of a corpus: the default one, or the one drawn for ``seed`` (a function of it)."""
    if name == "default":
        return DEFAULT_OUTCOME_MODEL
    if name == "random":
        return draw_outcome_model(random.Random(f"frugal-outcome-model:{seed}"))
    raise ValueError(f"outcome model must be one of {', '.join(OUTCOME_MODELS)}, got {name!r}")


@dataclass(frozen=True)
class PipelineOutcome:
    """One pipeline's share of the outcome model: alphas, coefficient multipliers, cycle phase."""

    alphas: tuple[float, ...]
    scale: tuple[float, ...] = (1.0,) * 8   # anomaly, drift, new data, structure, history, hour, code age, cycle
    phase: float = 0.0


def pipeline_outcome(spec: PipelineSpec, model: OutcomeModel, rng: random.Random) -> PipelineOutcome:
    """Rescale the pipeline's propensities to the model and draw its multipliers and phase (``rng``
    is the pipeline's own outcome stream: the default model draws nothing, so its corpora stay
    those of earlier versions)."""
    if model == DEFAULT_OUTCOME_MODEL:
        return PipelineOutcome(spec.alphas)
    base = spec.alphas[0]
    a0 = model.alpha_mean + (base - ALPHA_MEAN) * model.alpha_sd / ALPHA_SD
    alphas = tuple(a0 + (a - base + 0.2) * model.branch_sd / BRANCH_SD - 0.2 if b else a0
                   for b, a in enumerate(spec.alphas))
    scale = tuple(math.exp(rng.gauss(0.0, model.hetero_sd)) for _ in range(8))
    return PipelineOutcome(alphas, scale, rng.uniform(0.0, 2 * math.pi))


@dataclass(frozen=True)
class Outcome:
    p_fail: float
    p_bless: float
    p_infra_ok: float
    push_probability: float


def _beta(rng: random.Random, a: float, b: float) -> float:
    return rng.betavariate(a, b)


def sample_pipeline(rng: random.Random, index: int, hours: float, mode: str) -> PipelineSpec:
    """Draw one pipeline. ``mode`` is sync, async or mixed (70% sync)."""
    family = rng.choice(("ads_ctr", "search_rank", "spam", "fraud", "recs", "churn", "eta", "pricing",
                         "vision_qc", "nlp_intent", "forecast", "abuse"))
    cadence = rng.choices(CADENCES_H, CADENCE_WEIGHTS)[0]
    if rng.random() < 0.45:
        start = 0.0
    else:
        start = rng.uniform(0.0, hours * 0.85)
    end = hours
    if rng.random() < 0.3:
        end = start + (hours - start) * rng.uniform(0.15, 0.95)
    n_trainers = rng.choices((1, 2, 3, 4), (0.65, 0.22, 0.10, 0.03))[0]
    window = rng.choices((1, 2, 3, 5, 7, 14), (0.45, 0.15, 0.15, 0.1, 0.1, 0.05))[0]
    if mode == "mixed":
        mode = "sync" if rng.random() < 0.7 else "async"
    alpha = rng.gauss(ALPHA_MEAN, ALPHA_SD)
    alphas = tuple(alpha + (0.0 if b == 0 else rng.gauss(-0.2, BRANCH_SD)) for b in range(n_trainers))
    # Faster cadences run on smaller data so that a run fits its slot.
    size = math.exp(rng.gauss(0.0, 0.7)) * min(1.0, cadence * 3600 * 0.45 / 3300.0)
    return PipelineSpec(
        index=index,
        name=f"{family}_{index:05d}",
        mode=mode,
        cadence_h=cadence,
        start_h=start,
        end_h=end,
        n_trainers=n_trainers,
        window=window,
        has_transform=rng.random() < 0.55,
        has_tuner=rng.random() < 0.12,
        has_infra_validator=rng.random() < 0.3,
        has_evaluator=rng.random() < 0.95,
        p_new_data=min(1.0, 0.45 + _beta(rng, 3.0, 1.2) * 0.6),
        anomaly_rate=_beta(rng, 0.8, 9.0),
        drift_sd=rng.uniform(0.1, 1.2),
        base_fail=_beta(rng, 1.0, 18.0),
        alphas=alphas,
        code_per_day=rng.choice((0.0, 0.02, 0.05, 0.1, 0.2)),
        hparam_per_day=rng.choice((0.0, 0.03, 0.07, 0.15)),
        structure_per_day=rng.choice((0.0, 0.0, 0.01, 0.02, 0.04)),
        size=size,
        tfx_version=rng.choice(TFX_VERSIONS),
        # drawn last so that the knobs above stay those of earlier versions for a seed
        caching=not (rng.random() < P_CACHE_OFF and mode == "sync"),
        p_manual_rerun=_beta(rng, *MANUAL_RERUN_BETA) if mode == "sync" else 0.0,
        cache_bust_per_day=rng.choice(CACHE_BUST_PER_DAY),
    )


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -60 else 0.0


def outcome_probabilities(spec: PipelineSpec, branch: int, d: Drivers, has_infra: bool,
                          model: OutcomeModel = DEFAULT_OUTCOME_MODEL, pipe: PipelineOutcome | None = None) -> Outcome:
    """Probabilities of failure, blessing and push for one training under the model."""
    p_fail = min(0.9, spec.base_fail + FAIL_CODE * d.code_change + FAIL_HPARAM * d.hparam_change
                 + FAIL_STRUCTURE * d.structure_change)
    if model == DEFAULT_OUTCOME_MODEL:
        eta = (spec.alphas[branch] + d.health + B_ANOMALY * d.anomaly + B_DRIFT * d.drift
               + B_NEW_DATA * d.new_data + B_STRUCTURE * d.structure_change
               + B_HISTORY * (d.recent_bless_rate - 0.6))
    else:
        pipe = pipe or PipelineOutcome(spec.alphas)
        k = pipe.scale
        eta = (pipe.alphas[branch] + model.b_health * d.health + k[0] * model.b_anomaly * d.anomaly
               + k[1] * model.b_drift * d.drift + k[2] * model.b_new_data * d.new_data
               + k[3] * model.b_structure * d.structure_change + k[4] * model.b_history * (d.recent_bless_rate - 0.6)
               + k[5] * model.b_hour * math.cos(2 * math.pi * (d.hour - model.hour_peak) / 24.0)
               + k[6] * model.b_code_age * math.exp(-d.runs_since_code_change / model.code_age_runs)
               + k[7] * model.b_cycle * d.cycle + d.shock)
    p_bless = _sigmoid(eta) if spec.has_evaluator else 1.0
    p_infra_ok = 1.0 - P_INFRA_FAIL if has_infra else 1.0
    return Outcome(p_fail, p_bless, p_infra_ok, (1.0 - p_fail) * p_bless * p_infra_ok)
