"""One module per command; each exposes ``register(app)``. Listed in help order."""

from frugal.commands import analyze, demo, ingest, prune, report, run, serve, simulate, sql

COMMAND_MODULES = (demo, ingest, sql, simulate, analyze, report, prune, run, serve)
