"""`frugal prune`: evaluate the pruning policy on history, or decide for a pipeline's next training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register", "evaluate_lines", "write_decisions", "shadow_lines", "audit_lines"]

DECISION_COLUMNS = ("source_id", "trainer_execution_id", "started_at", "probability", "pruned", "guarded")


def write_decisions(decisions, path: Path) -> None:
    """The replay's decisions as CSV (``DECISION_COLUMNS`` first), written atomically."""
    import os
    import tempfile

    cols = list(DECISION_COLUMNS) + [c for c in decisions.columns if c not in DECISION_COLUMNS]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        decisions[cols].to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _open(warehouse: Path):
    from optimizer.errors import OptimizerError
    from provenance.warehouse import connect

    if not warehouse.exists():
        raise OptimizerError(f"warehouse {warehouse} does not exist; create it with `frugal ingest` "
                             "and `frugal analyze`")
    return connect(str(warehouse), read_only=True)


def evaluate_lines(data: dict) -> list[str]:
    """Human table of an evaluation (``ReplayResult.to_dict()``)."""
    m = data["metrics"]
    pol = data["policy"]
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    lines = [f"trained on trainings before {data['train_until']}; replayed {m['trainings']:,} later trainings"]
    fresh = pol.get("objective") == "freshness"
    if pol["fallback"]:
        lines.append(f"fallback: {pol['fallback']}")
    elif fresh:
        lines.append(f"retrained {len(pol.get('refits', [])) or 1} times during the replay; prune where the expected "
                     "added age per second of waste saved is lowest, within the age budget")
    else:
        ths = [r["threshold"] for r in pol.get("refits", []) if r["threshold"] is not None] or [pol["threshold"]]
        if len(pol.get("refits", [])) > 1:
            lines.append(f"retrained {len(pol['refits'])} times during the replay; threshold: prune when P(push) < "
                         f"{min(ths):.4f} .. {max(ths):.4f} (budget {pct(pol['max_lost_pushes'])} lost pushes)")
        else:
            lines.append(f"threshold: prune when P(push) < {pol['threshold']:.4f} "
                         f"(budget {pct(pol['max_lost_pushes'])} lost pushes)")
    if pol.get("objective") == "freshness":
        lines.append(f"objective: freshness, at most {pct(pol['max_added_age'])} added age of the deployed models"
                     + (f", model-age SLO {pol['max_model_age_h']:g} h" if pol.get("max_model_age_h") else
                        f", longest model age within {pol['age_factor']:g}x"))
    oracle = data.get("oracle")
    base = data.get("baselines") or {}
    # columns: the policy, each baseline (replayed the same way), the oracle
    cols = [("policy", m)] + [(name.replace("_", " "), b) for name, b in base.items()]
    if oracle and fresh and oracle.get("controlled"):
        cols.append(("oracle online", oracle["controlled"]))
    if oracle:
        cols.append(("oracle", oracle))
    rows = [("", *(c[0] for c in cols))]

    def row(label, key, fmt):
        rows.append((label, *(fmt(c[1][key]) if key in c[1] else "" for c in cols)))

    row("trainings pruned", "pruned", lambda v: f"{v:,}")
    row("waste pruned", "waste_pruned", pct)
    row("  of what trainer-time pruning can skip", "waste_pruned_of_skippable", pct)
    row("added age of deployed models", "added_age", pct)
    row("longest model age, worst pipeline", "longest_age_ratio_max",
        lambda v: "n/a" if v is None else f"x{v:.2f}")
    row("pushes lost", "pushes_lost", pct)
    row("pushes lost (count)", "pushes_lost_count", lambda v: f"{v:,} of {m['pushes']:,}")
    row("compute saved (share of all)", "compute_saved_share", pct)
    if "auc" in m:
        row("ranking (AUC)", "auc", lambda v: "n/a" if v is None else f"{v:.3f}")
    if base or oracle:
        at = [pct(m["waste_pruned"])] + [pct(b["at_policy_loss"]["waste_pruned"]) for b in base.values()]
        if oracle and fresh and oracle.get("controlled"):
            at.append("")
        if oracle:
            at.append(pct(oracle["waste_pruned_at_policy_loss"]))
        rows.append(("waste pruned at the policy's loss", *at))
    if oracle and oracle.get("without_guards"):
        rows.append(("oracle without cadence guards", *([""] * (len(cols) - 1)),
                     pct(oracle["without_guards"]["waste_pruned"])))
    width = max(len(r[0]) for r in rows) + 2
    cw = max(16, max(len(str(v)) for r in rows for v in r[1:]) + 2)
    for r in rows:
        lines.append(r[0].ljust(width) + "".join(str(v).rjust(cw) for v in r[1:]))
    cad = data.get("cadence_summary", {})
    if cad.get("pipelines_compared"):
        lines.append(
            f"cadence: median interval between pushes unchanged in {cad['median_unchanged']} of "
            f"{cad['pipelines_compared']} pipelines (within {pct(cad['tolerance'])}: "
            f"{cad['median_within_tolerance']}); longest interval x{cad['longest_ratio_median']:.2f} "
            f"(median over pipelines), at most x{cad['longest_ratio_max']:.2f}")
    for label, part in (("oracle", oracle or {}), ("oracle without guards", (oracle or {}).get("without_guards", {}))):
        oc = part.get("cadence_summary", {})
        if oc.get("pipelines_compared"):
            lines.append(f"cadence, {label}: median within {pct(oc['tolerance'])} in "
                         f"{oc['median_within_tolerance']} of {oc['pipelines_compared']}; longest interval at "
                         f"most x{oc['longest_ratio_max']:.2f}")
    if oracle and data.get("policy_vs_oracle") is not None:
        lines.append(f"policy reaches {pct(data['policy_vs_oracle'])} of the oracle's waste pruned "
                     f"({pct(data.get('policy_vs_oracle_unguarded'))} of the oracle's without cadence guards)")
    lane = (base.get("lane_push_rate") or {}).get("hindsight_at_budget")
    if fresh and lane is not None:
        ratio = (base["lane_push_rate"].get("policy_ratio_at_budget"))
        lines.append(f"the lane push-rate rule held in hindsight to the whole age budget prunes {pct(lane['waste_pruned'])} "
                     f"of the waste (added age {pct(lane['added_age'])}); the policy "
                     + ("n/a" if ratio is None else f"x{ratio:.2f}") + " of it")
    if pol["top_features"]:
        lines.append("top features: " + ", ".join(f["feature"] for f in pol["top_features"][:5]))
    return lines


def shadow_lines(pipelines: list[dict]) -> list[str]:
    """Human table of the shadow report (``GET /api/v1/shadow``'s pipelines)."""
    if not pipelines:
        return ["no decision was answered in shadow mode yet"]
    head = ("pipeline", "source", "decisions", "would prune", "compute saved s", "pushes lost", "added age h",
            "added age h^2")
    rows = [head] + [(p["pipeline"], str(p["source"]), str(p["decisions"]), str(p["would_prune"]),
                      f"{p['compute_saved_s']:.1f}", str(p["pushes_lost"]), f"{p['added_age_h']:.3g}",
                      f"{p['added_age_h2']:.3g}") for p in pipelines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]


def audit_lines(data: dict) -> list[str]:
    """Human summary of the audit (``GET /api/v1/audit``)."""
    g = lambda v: "?" if v is None else f"{v:.3g}"  # noqa: E731
    lo, hi = data["pushes_lost_ci95"] or (None, None)
    alo, ahi = data["added_age_h2_ci95"] or (None, None)
    lines = [f"model prunes in enforce mode: {data['would_prune']}, of which explored (ran anyway): "
             f"{data['explored']} ({data['explored_matched']} matched to their training, "
             f"{data['explored_pushes']} pushed); enforced: {data['enforced_prunes']}",
             f"pushes lost by the enforced prunes: estimated {data['estimated_pushes_lost']:.3g} "
             f"(95% interval {g(lo)} .. {g(hi)}); the policy predicted {data['predicted_pushes_lost']:.3g}",
             f"added age of the deployed models (h^2): estimated {data['estimated_added_age_h2']:.3g} "
             f"(95% interval {g(alo)} .. {g(ahi)}); the policy predicted {data['predicted_added_age_h2']:.3g}"]
    for p in data.get("pipelines", []):
        lines.append(f"  {p['pipeline']} ({p['source']}): {p['enforced_prunes']} pruned, {p['explored']} explored, "
                     f"{p['explored_pushes']} pushed; estimated pushes lost {p['estimated_pushes_lost']:.3g}, "
                     f"predicted {p['predicted_pushes_lost']:.3g}")
    return lines


def _report(url, warehouse, token_file, endpoint: str, pipeline: str | None, local, fmt: str, lines) -> None:
    """Print one of the service's reports: ``GET endpoint[?pipeline=]`` of a running service
    (``url``), or ``local(con)`` on its warehouse; as JSON, or as ``lines(data)``."""
    from urllib.parse import quote

    from optimizer.errors import OptimizerError

    if fmt not in ("table", "json"):
        raise OptimizerError(f"--format must be table or json, not {fmt!r}")
    if (warehouse is None) == (url is None):
        raise OptimizerError("give either --warehouse FILE or --url of a running `frugal serve`")
    if url is not None:
        from frugal.commands.remote import call

        path = endpoint + (f"?pipeline={quote(pipeline, safe='')}" if pipeline else "")
        data = call(url, "GET", path, token_file=token_file)
    else:
        con = _open(warehouse)
        try:
            data = local(con)
        finally:
            con.close()
    if fmt == "json":
        typer.echo(json.dumps(data, indent=2))
    else:
        for line in lines(data):
            typer.echo(line)


# the budget's options, shared by `prune evaluate` and `prune decide`
MAX_LOST_PUSHES = typer.Option(0.02, "--max-lost-pushes",
                               help="Budget under --objective pushes: share of pushes the policy may lose.")
OBJECTIVE = typer.Option("freshness", "--objective",
                         help="What the budget bounds: freshness (the deployed models' added age) or pushes (the "
                              "share of pushes lost).")
MAX_ADDED_AGE = typer.Option(0.05, "--max-added-age",
                             help="Budget under --objective freshness: how much older the deployed models may get "
                                  "on average (0.05 = 5% added age).")
MAX_MODEL_AGE_H = typer.Option(None, "--max-model-age-h",
                               help="Model-age SLO: never prune when the deployed model would get older than this "
                                    "many hours at the lane's next expected push (default: 2x the lane's typical "
                                    "interval between pushes).")


# the options of the service's reports, shared by `prune shadow` and `prune audit`
REPORT_URL = typer.Option(None, "--url", help="A running `frugal serve` (which holds the warehouse).")
REPORT_WAREHOUSE = typer.Option(None, "--warehouse", "-w", help="The service's warehouse, when it is not running.")
REPORT_TOKEN_FILE = typer.Option(None, "--token-file", help="Bearer token for --url (first line).")
REPORT_PIPELINE = typer.Option(None, "--pipeline", "-p", help="Only this pipeline.")
REPORT_FORMAT = typer.Option("table", "--format", help="table or json.")


def register(app: typer.Typer) -> None:
    """Attach `frugal prune evaluate` and `frugal prune decide` to the application."""
    prune = typer.Typer(help="Predict and prune trainings that will not push a model.", no_args_is_help=True)
    app.add_typer(prune, name="prune")

    @prune.command("evaluate")
    def evaluate_command(
        warehouse: Path = typer.Option(..., "--warehouse", "-w", help="Analyzed DuckDB warehouse."),
        train_until: str = typer.Option(None, "--train-until",
                                        help="Learn from trainings before this UTC date/time, replay the rest "
                                             "(default: the first 60% of the time span)."),
        max_lost_pushes: float = MAX_LOST_PUSHES,
        objective: str = OBJECTIVE,
        max_added_age: float = MAX_ADDED_AGE,
        max_model_age_h: float = MAX_MODEL_AGE_H,
        decisions_out: Path = typer.Option(
            None, "--decisions-out",
            help="Write one CSV row per replayed training: source_id, trainer_execution_id, started_at, "
                 "probability, pruned, guarded, then more columns."),
        ground_truth: list[Path] = typer.Option(
            None, "--ground-truth",
            help="Ground-truth JSON with true push probabilities (simulated corpora): adds the oracle."),
        fmt: str = typer.Option("table", "--format", help="table or json."),
        seed: int = typer.Option(0, "--seed", help="Seed of the predictor."),
        refits: int = typer.Option(8, "--refits",
                                   help="Retrain this many times during the replay, on what was known by then "
                                        "(1 = train once)."),
    ) -> None:
        """Train on the past, replay the future as if the policy had been on, and report."""
        import pandas as pd

        from optimizer.errors import OptimizerError
        from optimizer.pruning.policy import PolicyConfig
        from optimizer.pruning.predictor import PredictorConfig
        from optimizer.pruning.replay import evaluate, load_truth

        if fmt not in ("table", "json"):
            raise OptimizerError(f"--format must be table or json, not {fmt!r}")
        until = None
        if train_until:
            try:
                until = pd.Timestamp(train_until)
            except ValueError as exc:
                raise OptimizerError(f"--train-until {train_until!r} is not a date; use e.g. 2026-02-01 or "
                                     "2026-02-01T12:00") from exc
        con = _open(warehouse)
        truth = load_truth(con, ground_truth) if ground_truth else None
        config = PolicyConfig(objective=objective, max_added_age=max_added_age, max_model_age_h=max_model_age_h,
                              max_lost_pushes=max_lost_pushes, refits=refits)
        result = evaluate(con, train_until=until, config=config, predictor_config=PredictorConfig(seed=seed),
                          truth=truth)
        if decisions_out is not None:
            write_decisions(result.decisions, decisions_out)
        data = result.to_dict()
        if fmt == "json":
            typer.echo(json.dumps(data, indent=2))
        else:
            for line in evaluate_lines(data):
                typer.echo(line)

    @prune.command("shadow")
    def shadow_command(
        url: str = REPORT_URL,
        warehouse: Path = REPORT_WAREHOUSE,
        token_file: Path = REPORT_TOKEN_FILE,
        pipeline: str = REPORT_PIPELINE,
        fmt: str = REPORT_FORMAT,
    ) -> None:
        """What pruning would have done to the pipelines in shadow mode: decisions, would-be prunes,
        compute saved, pushes lost, added model age (see docs/service.md, "Shadow mode")."""
        from optimizer.pruning.audit import shadow_report

        _report(url, warehouse, token_file, "/api/v1/shadow", pipeline,
                lambda con: {"pipelines": shadow_report(con, pipeline)}, fmt, lambda d: shadow_lines(d["pipelines"]))

    @prune.command("audit")
    def audit_command(
        url: str = REPORT_URL,
        warehouse: Path = REPORT_WAREHOUSE,
        token_file: Path = REPORT_TOKEN_FILE,
        pipeline: str = REPORT_PIPELINE,
        fmt: str = REPORT_FORMAT,
    ) -> None:
        """What the enforced prunes cost, estimated from the explored trainings (inverse propensity
        weighting, 95% interval), beside what the policy predicted (docs/service.md, "Audit")."""
        from optimizer.pruning.audit import audit

        _report(url, warehouse, token_file, "/api/v1/audit", pipeline, lambda con: audit(con, pipeline), fmt,
                audit_lines)

    @prune.command("decide")
    def decide_command(
        warehouse: Path = typer.Option(None, "--warehouse", "-w", help="Analyzed DuckDB warehouse."),
        pipeline: str = typer.Option(..., "--pipeline", "-p", help="Pipeline name (as in graphlets.pipeline)."),
        url: str = typer.Option(None, "--url", help="Ask a running `frugal serve` instead: milliseconds, and the "
                                                    "decision is recorded in its ledger."),
        token_file: Path = typer.Option(None, "--token-file", help="Bearer token for --url (first line)."),
        source: str = typer.Option(None, "--source", help="Source id, with --url, when the pipeline is in several."),
        max_lost_pushes: float = MAX_LOST_PUSHES,
        objective: str = OBJECTIVE,
        max_added_age: float = MAX_ADDED_AGE,
        max_model_age_h: float = MAX_MODEL_AGE_H,
        fmt: str = typer.Option("table", "--format", help="table or json."),
    ) -> None:
        """Say prune or run for the pipeline's next training, with the probability and why."""
        from optimizer.errors import OptimizerError
        from optimizer.pruning.hook import decide
        from optimizer.pruning.policy import PolicyConfig

        if fmt not in ("table", "json"):
            raise OptimizerError(f"--format must be table or json, not {fmt!r}")
        if (warehouse is None) == (url is None):
            raise OptimizerError("give either --warehouse FILE or --url of a running `frugal serve`")
        if url is not None:
            from frugal.commands.remote import call

            data = call(url, "POST", "/api/v1/decisions", token_file=token_file,
                        json={"pipeline": pipeline, **({"source": source} if source else {})})
        else:
            d = decide(_open(warehouse), pipeline,
                       config=PolicyConfig(objective=objective, max_added_age=max_added_age,
                                           max_model_age_h=max_model_age_h, max_lost_pushes=max_lost_pushes))
            data = d.to_dict()
        if fmt == "json":
            typer.echo(json.dumps(data, indent=2))
            return
        prob = "n/a" if data["probability"] is None else f"{data['probability']:.3f}"
        typer.echo(f"{data['action'].upper()}  {data['pipeline']} ({data['lane']})  P(push) = {prob}"
                   + (f"  threshold {data['threshold']:.3f}" if data["threshold"] is not None else "")
                   + (f"  decision {data['decision_id']}" if data.get("decision_id") else ""))
        for reason in data["reasons"]:
            typer.echo(f"  - {reason}")
