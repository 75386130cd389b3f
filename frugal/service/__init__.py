"""`frugal serve`: one process that owns the warehouse and answers over HTTP.

``server.create_app`` builds the FastAPI application around a ``state.Service`` (the warehouse
owner: background ingest, analysis, policy refits, warm decision state, ledger). Routers in
``routers/`` are thin: they parse, call the service, and shape JSON.
"""
