"""`frugal serve`: one process that owns the warehouse and answers over HTTP.

``server.create_app`` builds the FastAPI application around a ``state.Service``, the warehouse
owner, which holds the warm decision state and runs its parts: ``refresher`` (background
ingest, analysis, policy refits in a child process, ``refit``), ``decider`` (decisions and
rules) and ``ledger_writer`` (group commit of decisions); ``shared`` holds the values they
pass each other, ``errors`` what they raise. Routers in ``routers/`` are thin: they parse,
call the service, and shape JSON.
"""
