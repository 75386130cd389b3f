"""The pruning policy: skip trainings that would never reach a deployed model.

Decides, for the next training of a pipeline, ``run`` or ``prune`` (and replays that decision
over history to judge it). Reads the warehouse: graphlets, their members and properties, the
decision ledger and operator rules. Layers, each importing only the ones above it:

- ``features``: what is known when a trainer starts, and the outcomes to learn from;
  ``upcoming``: every lane's next training described as if it started now;
- ``logistic``, ``predictor``: the push-probability model; ``baselines``: the rules it must beat;
- ``freshness``: the deployed models' age with and without pruning (the default yardstick);
- ``policy``: guards, the model-age SLO, thresholds, the budget controller; ``ledger``: decisions
  and rules tables, and the weights of explored trainings;
- ``replay``: the policy over history, figures, the oracle, censored refits; ``training_set``: a
  bounded, weighted training set; ``audit``: the shadow report and the audit of enforced prunes;
- ``live``: the policy kept warm for the service; ``hook``: one decision from a warehouse;
  ``report_section``: the report's page.
"""
