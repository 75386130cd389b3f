"""`frugal serve`: the service that owns the warehouse and answers pre-run decisions over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Attach `frugal serve` to the application."""

    @app.command("serve")
    def serve_command(
        stores: list[str] = typer.Argument(None, help="MLMD stores: SQLite files, mysql://user@host:port/db, "
                                                      "postgresql://... (or `stores` in --config)."),
        warehouse: Path = typer.Option(None, "--warehouse", "-w", help="DuckDB warehouse this service owns."),
        config: Path = typer.Option(None, "--config", "-c", help="TOML file with these settings (the options "
                                                                 "given here win); see docs/service.md."),
        host: str = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1; any other "
                                                      "needs --token-file)."),
        port: int = typer.Option(None, "--port", "-p", help="TCP port (default 8470; 0 picks a free one)."),
        token_file: Path = typer.Option(None, "--token-file", help="File whose first line is the bearer token "
                                                                   "every request but /healthz must carry."),
        ingest_every: float = typer.Option(None, "--ingest-every", help="Seconds between background ingests "
                                                                        "(default 60)."),
        source_id: list[str] = typer.Option(None, "--source-id", help="Source id per store, in order (default: "
                                                                      "as frugal ingest: the file stem, folder/stem "
                                                                      "for stores whose stems collide)."),
        objective: str = typer.Option(None, "--objective", help="What the budget bounds: freshness (the deployed "
                                                                "models' added age; the default) or pushes."),
        max_added_age: float = typer.Option(None, "--max-added-age", help="Freshness budget: how much older the "
                                                                          "deployed models may get (default 0.05)."),
        max_model_age_h: float = typer.Option(None, "--max-model-age-h",
                                              help="Model-age SLO in hours (default: 2x each lane's typical "
                                                   "interval between pushes; per pipeline in a rule)."),
        max_lost_pushes: float = typer.Option(None, "--max-lost-pushes", help="Pushes budget (--objective pushes): "
                                                                              "share of pushes the policy may lose "
                                                                              "(default 0.02)."),
        mode: str = typer.Option(None, "--mode", help="Mode of the pipelines in the stores when the service first "
                                                      "loads them: enforce, shadow or off (default enforce)."),
        new_pipeline_mode: str = typer.Option(None, "--new-pipeline-mode",
                                              help="Mode of a pipeline first seen later (default shadow)."),
        explore: float = typer.Option(None, "--explore", help="Enforce mode: run a model prune anyway with this "
                                                              "probability, to measure what pruning costs "
                                                              "(default 0.05; 0: never)."),
        explore_seed: int = typer.Option(None, "--explore-seed", help="Seed of the exploration draws (default 0)."),
        memory_limit: str = typer.Option(None, "--memory-limit", help="Memory the service and its refit may use "
                                                                      "together, e.g. 6GB (default: a third of the "
                                                                      "machine's memory); see docs/service.md."),
        learn_max_rows: int = typer.Option(None, "--learn-max-rows", help="Trainings a refit learns from at most "
                                                                          "(default: as many as the memory limit "
                                                                          "holds)."),
        port_file: Path = typer.Option(None, "--port-file", help="Write the port listened on to this file once "
                                                                 "serving (with --port 0)."),
    ) -> None:
        """Serve decisions, the ledger, rules and SQL over HTTP while keeping the warehouse fresh.

        On start it ingests and analyses the stores and learns the policy (or restores the saved one),
        then ingests incrementally every --ingest-every seconds. API under /api/v1, OpenAPI at /docs.
        """
        import dataclasses
        import logging
        import socket
        import sys

        import uvicorn

        from frugal.service.config import ConfigError, load_toml, merged
        from frugal.service.server import create_app
        from provenance.connections import parse_store
        from provenance.errors import ProvenanceError
        from provenance.ingest import store_source_ids

        try:
            base = load_toml(config) if config is not None else {}
            cfg = merged(base, {"stores": tuple(stores) if stores else None, "warehouse": warehouse, "host": host,
                                "port": port if port not in (None, 0) else None, "token_file": token_file,
                                "ingest_every_s": ingest_every,
                                "source_ids": tuple(source_id) if source_id else None,
                                "max_lost_pushes": max_lost_pushes, "objective": objective,
                                "max_added_age": max_added_age, "max_model_age_h": max_model_age_h, "mode": mode,
                                "new_pipeline_mode": new_pipeline_mode, "explore": explore,
                                "explore_seed": explore_seed, "memory_limit": memory_limit,
                                "learn_max_rows": learn_max_rows})
        except (ConfigError, TypeError) as exc:
            raise ProvenanceError(str(exc)) from exc
        if cfg.source_ids is None:
            # as `frugal ingest` chooses them: folder/stem for stores whose stems collide, the
            # warehouse's own ids for the stores it holds
            ids, notes = store_source_ids(cfg.stores, cfg.warehouse)
            for note in notes:
                typer.echo(note, err=True)
            if ids != [parse_store(s).source_id for s in cfg.stores]:
                cfg = dataclasses.replace(cfg, source_ids=tuple(ids))
        # decisions are short, refreshes long: hand the interpreter to a waiting request sooner
        sys.setswitchinterval(0.001)
        if not logging.getLogger().handlers or logging.getLogger().level > logging.INFO:
            logging.getLogger().setLevel(logging.INFO)
        sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.host, 0 if port == 0 else cfg.port))
        except OSError as exc:
            raise ProvenanceError(f"cannot listen on {cfg.host}:{cfg.port}: {exc}. Pick another --port "
                                  "(0 picks a free one)") from exc
        bound = sock.getsockname()[1]
        try:
            application = create_app(cfg)
        except ConfigError as exc:
            sock.close()
            raise ProvenanceError(str(exc)) from exc
        sock.listen(2048)      # connections queue from now on, until the server accepts them
        if port_file is not None:
            tmp = port_file.with_name(port_file.name + ".tmp")
            tmp.write_text(str(bound))
            tmp.replace(port_file)
        typer.echo(f"frugal serving {cfg.warehouse} on http://{cfg.host}:{bound} (API /api/v1, docs /docs)", err=True)
        server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
