"""The reuse and materialization planner, and garbage collection of pipeline roots.

Decides, for one run of a pipeline DAG, which nodes to compute, load from the artifact store or
prune, which outputs to store under a byte budget and which stored ones to evict; and, for a
pipeline root, what to delete under a budget. Reads per-node costs derived from MLMD run
history (``costs``). Layers, each importing only the ones above it:

- ``plan``: plan values; ``dag``: validated node costs and orders; ``costs``: the cost model;
- ``execution``: the minimum-cut compute / load / prune plan; ``materialize``: what to store;
- ``config``: how to optimize a run; ``rules``: one module per rule, each ``Plan -> Plan``;
- ``optimize``: the chain of rules; ``collect_garbage``: a pipeline root under a budget.
"""
