"""Decisions from provenance, in two subsystems that share only :mod:`optimizer.errors`.

- :mod:`optimizer.pruning` decides, before a trainer starts, whether a training should run or
  be skipped because it would likely never be pushed. It reads the warehouse's graphlets
  (analysis/) and serves the pre-run hook, the service and the report's pruning section.
- :mod:`optimizer.reuse` decides, for a Beam pipeline run, which components to compute, load
  from an earlier run or prune, what to keep in the artifact store under a byte budget, and
  what to delete from a pipeline root. It reads per-component costs from MLMD run history;
  ``pipelines/`` executes what it decides.
"""
