"""The reuse optimizer's rules: one module per rule, each a pure function ``rule(plan, dag, costs,
config) -> Plan``. They import the plan values, costs and :mod:`optimizer.reuse.config`, never
the chain that runs them (:mod:`optimizer.reuse.optimize`)."""
