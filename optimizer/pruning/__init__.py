"""The pruning policy: skip trainings that would never reach a deployed model.

Decides, for the next training of a pipeline, ``run`` or ``prune`` (and replays that decision
over history to judge it). Reads the warehouse: graphlets, their members and properties, the
decision ledger and operator rules. Layers, each importing only the ones above it:

- ``features``: what is known when a trainer starts, and the outcomes to learn from;
  ``upcoming``: every lane's next training described as if it started now;
- ``logistic``, ``predictor``: the push-probability model; ``baselines``: the rules it must beat;
- ``policy``: guards, thresholds, the budget controller; ``ledger``: decisions and rules tables;
- ``replay``: the policy over history, figures and the oracle; ``live``: the policy kept warm
  for the service; ``hook``: one decision from a warehouse; ``report_section``: the report's page.
"""
