"""Roles: presets, the fallback, user TOML files, and their effect on the analysis."""

from __future__ import annotations

import duckdb
import pytest

import analysis
from analysis.errors import AnalysisError
from analysis.roles import PRESETS, default_roles, load_roles
from provenance.ingest import ingest


@pytest.mark.parametrize("kind,name,role", [
    ("execution", "tfx.components.trainer.component.Trainer", "trainer"),
    ("execution", "Trainer", "trainer"),
    ("execution", "ModelValidator", "evaluator"),
    ("execution", "tfx.dsl.components.common.resolver.Resolver", "resolver"),
    ("execution", "kfp.components.TrainModel", None),
    ("execution", "acme.InfraValidator", "infra-validator"),
    ("execution", "acme.model_push", "pusher"),
    ("artifact", "ModelPushPath", "deployment"),
    ("artifact", "PushedModel", "deployment"),
    ("artifact", "ModelExportPath", "model"),
    ("artifact", "ModelRun", "model-run"),
    ("artifact", "acme.SavedModel", "model"),
    ("artifact", "acme.ModelBlessingPath", "blessing"),
    ("context", "pipeline_run", "pipeline-run"),
    ("context", "run", "pipeline-run"),
    ("context", "component_run", "node"),
])
def test_default_roles(kind, name, role):
    assert default_roles().role_of(kind, name)[0] == role


def test_presets_alone_do_not_guess():
    assert PRESETS["tfx"].role_of("execution", "Trainer") == (None, None)
    assert PRESETS["tfx-legacy"].role_of("artifact", "ModelPushPath")[0] == "deployment"


def test_toml_rules_win_over_presets(tmp_path):
    f = tmp_path / "roles.toml"
    f.write_text('presets = ["tfx"]\n[execution]\n"acme.Learn" = "trainer"\n'
                 '"tfx.components.pusher.component.Pusher" = "evaluator"\n'
                 '[[pattern]]\nkind = "artifact"\nregex = "acme\\\\..*Ship"\nrole = "deployment"\n')
    roles = load_roles(f)
    assert roles.role_of("execution", "acme.Learn") == ("trainer", "exact")
    assert roles.role_of("execution", "tfx.components.pusher.component.Pusher")[0] == "evaluator"
    assert roles.role_of("artifact", "acme.BigShip")[0] == "deployment"
    assert roles.role_of("execution", "Trainer") == (None, None)  # only the tfx preset


@pytest.mark.parametrize("text,message", [
    ('[execution]\n"X" = "trainerr"\n', "not a execution role"),
    ('[weird]\n"X" = "trainer"\n', "unknown section"),
    ('presets = ["tfx", "nope"]\n', "unknown roles preset"),
    ('[[pattern]]\nkind = "execution"\nregex = "("\nrole = "trainer"\n', "does not compile"),
    ('[[pattern]]\nkind = "execution"\nrole = "trainer"\n', "needs kind, regex and role"),
    ('[execution\n', "not valid TOML"),
])
def test_bad_roles_files_say_what_to_fix(tmp_path, text, message):
    f = tmp_path / "r.toml"
    f.write_text(text)
    with pytest.raises(AnalysisError, match=message):
        load_roles(f)


def test_missing_roles_file(tmp_path):
    with pytest.raises(AnalysisError, match="does not exist"):
        load_roles(tmp_path / "nope.toml")


def test_custom_type_names_need_a_roles_file(tmp_path, mlmd_history):
    names = {"trainer": "acme.Learn", "pushed": "acme.Release", "model": "acme.Weights"}
    plan = {"legacy": False, "async": True, "names": names, "runs": [
        {"new_data": True, "trainers": [{"state": "COMPLETE", "evaluate": False, "blessed": False,
                                          "push": True, "rerun_downstream": False}]},
        {"new_data": True, "trainers": [{"state": "COMPLETE", "evaluate": False, "blessed": False,
                                          "push": False, "rerun_downstream": False}]},
    ]}
    record = mlmd_history(tmp_path / "s.sqlite", plan)
    wh = tmp_path / "w.duckdb"
    ingest([tmp_path / "s.sqlite"], wh, source_ids=["acme"], progress=False)
    summary = analysis.analyze(wh)
    assert summary.graphlets == 0  # nothing says what a trainer is
    con = duckdb.connect(str(wh), read_only=True)
    unmapped = {r[0] for r in con.execute("SELECT type_name FROM unmapped_types").fetchall()}
    con.close()
    assert {"acme.Learn", "acme.Release", "acme.Weights"} <= unmapped

    f = tmp_path / "acme.toml"
    f.write_text('[execution]\n"acme.Learn" = "trainer"\n[artifact]\n"acme.Release" = "deployment"\n'
                 '"acme.Weights" = "model"\n')
    summary = analysis.analyze(wh, roles=f)
    assert summary.sources_analyzed == ("acme",)  # new roles -> re-analysed
    con = duckdb.connect(str(wh), read_only=True)
    got = dict(con.execute("SELECT trainer_execution_id, pushed FROM graphlets").fetchall())
    assert con.execute("SELECT count(*) FROM unmapped_types WHERE type_name LIKE 'acme.%'").fetchone()[0] == 0
    con.close()
    deployed = {m for m, flag in record["pushes"] if flag}
    assert got == {t: m in deployed for t, m in record["model_of"].items()}
    assert sorted(got.values()) == [False, True]
