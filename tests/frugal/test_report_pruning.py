"""`frugal report` adds the replay of the pruning policy: its numbers, curve and cadence."""

from __future__ import annotations

import json
import re

import duckdb

from frugal.cli import main
from pipelines.simulator import simulate


def _shown_numbers(index_html: str, section: str) -> dict[str, str]:
    return dict(re.findall(rf'data-key="{section}\.(\w+)"[^>]*>([^<]*)<', index_html))


def test_report_replays_the_policy_on_a_simulated_corpus(tmp_path):
    sim = simulate(tmp_path / "corpus", pipelines=12, days=30, seed=5, progress=False)
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "report"
    assert main(["ingest", *map(str, sim.store_paths), "-w", str(warehouse), "-q"]) == 0
    args = ["report", "-w", str(warehouse), "-o", str(out)]
    for path in sim.ground_truth_paths:
        args += ["--ground-truth", str(path)]
    assert main(args) == 0

    pruning = json.loads((out / "summary.json").read_text())["pruning"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        replayed = con.execute(
            "SELECT count(*) FROM graphlets WHERE started_at >= ?::TIMESTAMPTZ", [pruning["train_until"]]
        ).fetchone()[0]
    assert pruning["trainings"] == replayed > 0
    assert 0 < pruning["pruned"] <= pruning["trainings"]
    # within its budget (the default of `frugal report`), and below its ceiling: the oracles
    # that know the true push probability, under the same guards and budget
    # the default objective: the deployed models' freshness, 5% added age at most
    assert pruning["max_added_age"] == 0.05
    assert 0.0 < pruning["added_age"] <= pruning["max_added_age"]
    assert pruning["longest_age_ratio_max"] <= 2.0
    assert 0.0 < pruning["pushes_lost"] < 1.0
    assert pruning["oracle_waste_pruned"] <= pruning["oracle_unguarded_waste_pruned"]
    for name in ("lane_push_rate", "last_outcome", "logistic"):
        assert 0.0 <= pruning[f"{name}_waste_pruned"] <= pruning["oracle_unguarded_waste_pruned"]
    shown = _shown_numbers((out / "index.html").read_text(), "pruning")
    assert shown["trainings"] == f"{pruning['trainings']:,}"
    assert shown["waste_pruned"] == f"{100 * pruning['waste_pruned']:.1f}%"
    assert shown["max_added_age"] == "5.0%"
    assert shown["added_age"] == f"{100 * pruning['added_age']:.1f}%"
    for name in ("pruning_tradeoff.png", "pruning_cadence.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert name in (out / "index.html").read_text()


def test_report_on_the_real_tfx_stores_says_the_policy_falls_back(tmp_path, tfx_store):
    warehouse, out = tmp_path / "w.duckdb", tmp_path / "report"
    assert main(["ingest", str(tfx_store("penguin_prod")), str(tfx_store("penguin_minimal")),
                 "-w", str(warehouse), "-q"]) == 0
    assert main(["report", "-w", str(warehouse), "-o", str(out)]) == 0
    pruning = json.loads((out / "summary.json").read_text())["pruning"]
    assert set(pruning) == {"fallback"}
    assert "run" in (out / "index.html").read_text().split("Pruning policy")[1].lower()
