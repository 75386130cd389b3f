"""The decision ledger and operator rules: warehouse tables that the live policy reads and writes.

``decisions`` holds one row per pre-run decision, written (and committed) before the answer
is sent. After each ingest ``match_outcomes`` says what happened to every decision: ``ran``
(the training it allowed, or that ran against a prune, with its graphlet and push outcome),
``pruned`` (a prune with no training after it), ``not_run`` (a run answer whose run never
trained before the lane's next decision) or ``pending``. ``rules`` pins pipelines to run or
prune (a data incident, a freeze); a rule wins over the model.

Pure SQL on a DuckDB connection; callers own transactions and locks.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

__all__ = ["create_ledger_tables", "record_decision", "record_decisions", "match_outcomes", "Rule", "put_rule",
           "delete_rule", "load_rules", "recent_decisions", "ledger_summary", "ledger_section", "LEDGER_COLUMNS",
           "RECORDED_COLUMNS", "explored_weights"]

LEDGER_COLUMNS = ("decision_id", "decided_at", "source_id", "pipeline", "lane", "run_id", "action",
                  "probability", "threshold", "policy_version", "reasons", "fallback", "rule", "inputs",
                  "cost_s", "outcome", "outcome_graphlet_id", "outcome_pushed", "matched_at",
                  "added_age", "mode", "would_prune", "explored", "propensity")
# what a decision records when it is made (the outcome columns are filled later by match_outcomes)
RECORDED_COLUMNS = LEDGER_COLUMNS[:15] + LEDGER_COLUMNS[19:]
# columns added after the first ledger: an older warehouse gains them on open
_ADDED_COLUMNS = (("added_age", "DOUBLE"), ("mode", "VARCHAR"), ("would_prune", "BOOLEAN"),
                  ("explored", "BOOLEAN"), ("propensity", "DOUBLE"))
_RULE_COLUMNS = (("mode", "VARCHAR"), ("max_model_age_h", "DOUBLE"))


def create_ledger_tables(con) -> None:
    """Create ``decisions`` and ``rules`` when missing (idempotent)."""
    con.execute("""
        CREATE TABLE IF NOT EXISTS decisions (
            decision_id VARCHAR PRIMARY KEY,
            decided_at TIMESTAMP NOT NULL,
            source_id VARCHAR, pipeline VARCHAR NOT NULL, lane VARCHAR, run_id VARCHAR,
            action VARCHAR NOT NULL, probability DOUBLE, threshold DOUBLE, policy_version VARCHAR,
            reasons VARCHAR, fallback VARCHAR, rule VARCHAR, inputs VARCHAR, cost_s DOUBLE,
            outcome VARCHAR DEFAULT 'pending', outcome_graphlet_id VARCHAR, outcome_pushed BOOLEAN,
            matched_at TIMESTAMP
        )
    """)
    for name, kind in _ADDED_COLUMNS:
        con.execute(f"ALTER TABLE decisions ADD COLUMN IF NOT EXISTS {name} {kind}")
    con.execute("""
        CREATE TABLE IF NOT EXISTS rules (
            pipeline VARCHAR PRIMARY KEY, source_id VARCHAR, action VARCHAR, reason VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL, expires_at TIMESTAMP
        )
    """)
    # an older ledger: a rule may now set only a mode or a model-age SLO (no action)
    nullable = con.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'rules' "
                           "AND column_name = 'action'").fetchone()
    if nullable is not None and nullable[0] == "NO":
        con.execute("ALTER TABLE rules ALTER COLUMN action DROP NOT NULL")
    for name, kind in _RULE_COLUMNS:
        con.execute(f"ALTER TABLE rules ADD COLUMN IF NOT EXISTS {name} {kind}")
    # each pipeline's mode when the service first saw it (enforce, shadow or off); the baseline
    # (service_meta 'modes_baseline_at') marks the first load: pipelines seen after it are new
    con.execute("""
        CREATE TABLE IF NOT EXISTS pipeline_modes (
            pipeline VARCHAR NOT NULL, source_id VARCHAR NOT NULL, mode VARCHAR NOT NULL, since TIMESTAMP NOT NULL,
            PRIMARY KEY (pipeline, source_id)
        )
    """)
    con.execute("CREATE TABLE IF NOT EXISTS service_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")


def record_decision(con, row: dict) -> None:
    """Insert one decision (keys: RECORDED_COLUMNS, missing ones NULL; reasons/inputs as lists).

    ``added_age``: the expected added age (h^2) the decision's training would cost if pruned (the
    freshness objective); ``mode``: ``enforce``, ``shadow`` or ``off``; ``would_prune``: the
    policy's verdict whatever the mode; ``explored``: a would-be prune run anyway to measure what
    pruning costs, chosen with probability ``propensity``."""
    record_decisions(con, [row])


def record_decisions(con, rows: list[dict]) -> None:
    """Insert decisions in one statement: atomic on its own, one call into DuckDB for a batch."""
    if not rows:
        return
    cols = RECORDED_COLUMNS
    params: list = []
    for row in rows:
        values = dict(row)
        values["reasons"] = json.dumps(list(values.get("reasons") or []))
        values["inputs"] = None if values.get("inputs") is None else json.dumps([int(a) for a in values["inputs"]])
        params.extend(values.get(c) for c in cols)
    one = f"({', '.join('?' * len(cols))})"
    con.execute(f"INSERT INTO decisions ({', '.join(cols)}) VALUES {', '.join([one] * len(rows))}", params)


def match_outcomes(con, now: dt.datetime | None = None, sources: list[str] | None = None) -> int:
    """Match every decision with what happened after it; return how many rows changed outcome.

    A decision's slot runs from its time to the next decision of the same lane. The first
    graphlet of its pipeline (same source) that started in the slot is the training it
    governed: outcome ``ran``. Without one, a prune is ``pruned``; a run is ``not_run`` once
    the slot is closed by a later decision, else ``pending``. ``sources``: only decisions for
    these sources (those whose data changed).
    """
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "graphlets" not in have:
        return 0
    before = con.execute("SELECT count(*) FROM decisions WHERE outcome <> 'pending'").fetchone()[0]
    con.execute("""
        UPDATE decisions d SET outcome = m.outcome, outcome_graphlet_id = m.gid, outcome_pushed = m.pushed,
                               matched_at = $now
        FROM (
            WITH slots AS (
                SELECT decision_id, source_id, pipeline, action, decided_at,
                       lead(decided_at) OVER (PARTITION BY source_id, pipeline, lane ORDER BY decided_at,
                                              decision_id) AS next_at
                FROM decisions WHERE $all OR list_contains($sources, source_id)
            ), hit AS (
                SELECT s.decision_id, arg_min(g.graphlet_id, g.started_at) AS gid,
                       arg_min(g.pushed, g.started_at) AS pushed
                FROM slots s JOIN graphlets g ON g.source_id = s.source_id AND g.pipeline = s.pipeline
                 AND g.started_at >= s.decided_at AND (s.next_at IS NULL OR g.started_at < s.next_at)
                GROUP BY 1
            )
            SELECT s.decision_id,
                   CASE WHEN h.gid IS NOT NULL THEN 'ran'
                        WHEN s.action = 'prune' THEN 'pruned'
                        WHEN s.next_at IS NOT NULL THEN 'not_run'
                        ELSE 'pending' END AS outcome,
                   h.gid, h.pushed
            FROM slots s LEFT JOIN hit h USING (decision_id)
        ) m
        WHERE d.decision_id = m.decision_id
          AND (d.outcome IS DISTINCT FROM m.outcome OR d.outcome_graphlet_id IS DISTINCT FROM m.gid
               OR d.outcome_pushed IS DISTINCT FROM m.pushed)
    """, {"now": now, "all": sources is None, "sources": list(sources or [])})
    after = con.execute("SELECT count(*) FROM decisions WHERE outcome <> 'pending'").fetchone()[0]
    return int(after - before)


@dataclass(frozen=True)
class Rule:
    """An operator's rule for a pipeline: pin it to ``run`` or ``prune`` (``action``), set its
    ``mode`` (enforce, shadow, off), its model-age SLO (``max_model_age_h``), or several of these."""

    pipeline: str
    action: str | None
    reason: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    source_id: str | None = None
    mode: str | None = None
    max_model_age_h: float | None = None

    def active(self, now: dt.datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    def to_dict(self) -> dict:
        return {"pipeline": self.pipeline, "source": self.source_id, "action": self.action, "reason": self.reason,
                "created_at": _iso(self.created_at), "expires_at": _iso(self.expires_at), "mode": self.mode,
                "max_model_age_h": self.max_model_age_h}


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.replace(tzinfo=dt.timezone.utc).isoformat()


def put_rule(con, rule: Rule) -> None:
    """Insert or replace the rule of ``rule.pipeline``."""
    con.execute("""
        INSERT OR REPLACE INTO rules (pipeline, source_id, action, reason, created_at, expires_at, mode,
                                      max_model_age_h)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    """, [rule.pipeline, rule.source_id, rule.action, rule.reason, rule.created_at, rule.expires_at, rule.mode,
          rule.max_model_age_h])


def delete_rule(con, pipeline: str) -> bool:
    """Remove the rule of ``pipeline``; False when it had none."""
    n = con.execute("SELECT count(*) FROM rules WHERE pipeline = ?", [pipeline]).fetchone()[0]
    con.execute("DELETE FROM rules WHERE pipeline = ?", [pipeline])
    return n > 0


def load_rules(con) -> dict[str, Rule]:
    """Every rule, by pipeline."""
    rows = con.execute("SELECT pipeline, action, reason, created_at, expires_at, source_id, mode, max_model_age_h "
                       "FROM rules").fetchall()
    return {r[0]: Rule(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows}


def recent_decisions(con, pipeline: str | None = None, limit: int = 20) -> list[dict]:
    """The newest decisions (of one pipeline), newest first, as JSON-ready dicts."""
    where = "WHERE pipeline = $p" if pipeline is not None else ""
    params = {"p": pipeline, "n": limit} if pipeline is not None else {"n": limit}
    cur = con.execute(f"SELECT {', '.join(LEDGER_COLUMNS)} FROM decisions {where} "
                      "ORDER BY decided_at DESC, decision_id DESC LIMIT $n", params)
    out = []
    for row in cur.fetchall():
        d = dict(zip(LEDGER_COLUMNS, row))
        d["reasons"] = json.loads(d["reasons"]) if d["reasons"] else []
        d["inputs"] = json.loads(d["inputs"]) if d["inputs"] else None
        for k in ("decided_at", "matched_at"):
            d[k] = _iso(d[k])
        d["source"] = d.pop("source_id")
        out.append(d)
    return out


def ledger_summary(con, pipeline: str | None = None) -> dict:
    """Decisions by action and outcome, compute saved and the estimated pushes lost.

    Compute saved: for each pruned decision, its expected cost from the trainer on (``cost_s``,
    the policy's cost feature: the lane's median skippable seconds); pushes lost are estimated as the sum of the pruned decisions'
    push probabilities (the ledger cannot observe a push that never happened).
    """
    where = "WHERE pipeline = $p" if pipeline is not None else ""
    row = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE action = 'prune'), count(*) FILTER (WHERE action = 'run'),
               count(*) FILTER (WHERE outcome = 'pruned'), count(*) FILTER (WHERE outcome = 'ran'),
               count(*) FILTER (WHERE outcome = 'ran' AND outcome_pushed),
               coalesce(sum(cost_s) FILTER (WHERE outcome = 'pruned'), 0),
               coalesce(sum(probability) FILTER (WHERE outcome = 'pruned'), 0),
               count(*) FILTER (WHERE rule IS NOT NULL), count(*) FILTER (WHERE fallback IS NOT NULL)
        FROM decisions {where}
    """, {"p": pipeline} if pipeline is not None else {}).fetchone()
    keys = ("decisions", "prune", "run", "pruned", "ran", "ran_pushed", "compute_saved_s",
            "estimated_pushes_lost", "by_rule", "fallback")
    return {k: (float(v) if k in ("compute_saved_s", "estimated_pushes_lost") else int(v)) for k, v in zip(keys, row)}


def ledger_section(con):
    """The decision ledger as a section of the batch report (``analysis.report.ReportSection``)."""
    from analysis.report import ReportSection

    s = ledger_summary(con)
    pipelines = con.execute("SELECT count(DISTINCT pipeline) FROM decisions").fetchone()[0]
    return ReportSection(
        key="decisions", title="Decisions of the pre-run hook",
        intro=("Every decision the service answered, matched with what happened after it. Compute saved: "
               "the trainer-onward seconds of the pruned trainings' lanes; pushes lost are estimated as the "
               "sum of the pruned trainings' push probabilities."),
        numbers={
            "decisions": ("decisions", s["decisions"], "int"),
            "pipelines": ("pipelines asking", int(pipelines), "int"),
            "prune": ("answered prune", s["prune"], "int"),
            "by_rule": ("decided by an operator rule", s["by_rule"], "int"),
            "fallback": ("fallback (too little history)", s["fallback"], "int"),
            "pruned": ("pruned (no training followed)", s["pruned"], "int"),
            "ran": ("ran", s["ran"], "int"),
            "ran_pushed": ("ran and pushed", s["ran_pushed"], "int"),
            "compute_saved_s": ("compute saved (s)", round(s["compute_saved_s"], 1), "float"),
            "estimated_pushes_lost": ("estimated pushes lost", round(s["estimated_pushes_lost"], 3), "float"),
        })


def explored_weights(con) -> dict[str, float]:
    """Graphlet id -> 1 / propensity of every training that ran because exploration chose it.

    Trainings the policy pruned are never observed, so a refit learns from a censored history; an
    explored training (a would-be prune run anyway with probability ``propensity``) stands for all
    the would-be prunes it was drawn from, and is weighted by the inverse of that probability.
    Empty without a ledger, or before any explored decision was matched to its training."""
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "decisions" not in have:
        return {}
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'decisions'").fetchall()}
    if not {"explored", "propensity"} <= cols:
        return {}
    rows = con.execute("""
        SELECT outcome_graphlet_id, max(propensity) FROM decisions
        WHERE explored AND outcome = 'ran' AND outcome_graphlet_id IS NOT NULL AND propensity > 0
        GROUP BY 1""").fetchall()
    return {str(g): 1.0 / float(p) for g, p in rows}
