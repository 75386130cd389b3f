"""Fingerprints: code, parameter and data changes invalidate exactly the changed node and its
descendants; formatting and unrelated files invalidate nothing."""

from __future__ import annotations

import importlib
import linecache
import sys
from pathlib import Path

import pytest

from pipelines.api import Pipeline, beam_step, python_step, source
from pipelines.errors import PipelineError
from pipelines.fingerprint import code_hash, is_project_module, params_hash

STEPS = '''
import json

SCALE = 2


def helper(x):
    return x * SCALE


def step_a(raw, factor=1):
    return raw


def step_b(a):
    return helper(a)


def step_c(b, epochs=1):
    return {"n": len(b), "epochs": epochs}


def step_d(raw):
    return json.dumps(raw)
'''

OTHER = '''
def unrelated(x):
    return x + 1
'''


@pytest.fixture
def userpkg(tmp_path, monkeypatch):
    """A throw-away user package ``fpuser`` whose files a test edits and re-imports."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    pkg = tmp_path / "fpuser"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "steps.py").write_text(STEPS)
    (pkg / "other.py").write_text(OTHER)
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def fresh():
        for name in [m for m in sys.modules if m == "fpuser" or m.startswith("fpuser.")]:
            del sys.modules[name]
        linecache.clearcache()
        importlib.invalidate_caches()
        return importlib.import_module("fpuser.steps")

    yield pkg, data, fresh
    for name in [m for m in sys.modules if m == "fpuser" or m.startswith("fpuser.")]:
        del sys.modules[name]


def build(steps, data: Path, factor: int = 1, epochs: int = 1) -> Pipeline:
    return Pipeline(
        "fp",
        (
            source("raw", str(data)),
            beam_step("a", steps.step_a, {"raw": "raw"}, factor=factor),
            beam_step("b", steps.step_b, {"a": "a"}),
            python_step("c", steps.step_c, {"b": "b"}, epochs=epochs),
            beam_step("d", steps.step_d, {"raw": "raw"}),
        ),
    )


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {n for n in before if before[n] != after[n]}


def test_user_module_is_project_code_and_libraries_are_not(userpkg):
    _, _, fresh = userpkg
    steps = fresh()
    assert is_project_module(steps)
    assert not is_project_module(json_module())
    assert not is_project_module(importlib.import_module("networkx"))


def json_module():
    return importlib.import_module("json")


def test_fingerprints_are_stable_across_reimports(userpkg):
    _, data, fresh = userpkg
    first = build(fresh(), data).fingerprints()
    second = build(fresh(), data).fingerprints()
    assert first == second
    assert len(set(first.values())) == 5


def test_code_change_in_called_helper_invalidates_node_and_descendants(userpkg):
    pkg, data, fresh = userpkg
    before = build(fresh(), data).fingerprints()
    (pkg / "steps.py").write_text(STEPS.replace("return x * SCALE", "return x * SCALE + 1"))
    after = build(fresh(), data).fingerprints()
    assert changed(before, after) == {"b", "c"}


def test_module_constant_referenced_by_helper_invalidates(userpkg):
    pkg, data, fresh = userpkg
    before = build(fresh(), data).fingerprints()
    (pkg / "steps.py").write_text(STEPS.replace("SCALE = 2", "SCALE = 3"))
    after = build(fresh(), data).fingerprints()
    assert changed(before, after) == {"b", "c"}


def test_code_change_in_component_function_invalidates_it_and_descendants(userpkg):
    pkg, data, fresh = userpkg
    before = build(fresh(), data).fingerprints()
    (pkg / "steps.py").write_text(STEPS.replace("def step_a(raw, factor=1):\n    return raw",
                                                "def step_a(raw, factor=1):\n    return raw[:1]"))
    after = build(fresh(), data).fingerprints()
    assert changed(before, after) == {"a", "b", "c"}


def test_parameter_change_invalidates_node_and_descendants(userpkg):
    _, data, fresh = userpkg
    steps = fresh()
    before = build(steps, data).fingerprints()
    assert changed(before, build(steps, data, factor=2).fingerprints()) == {"a", "b", "c"}
    assert changed(before, build(steps, data, epochs=5).fingerprints()) == {"c"}


def test_whitespace_only_change_to_unrelated_file_invalidates_nothing(userpkg):
    pkg, data, fresh = userpkg
    before = build(fresh(), data).fingerprints()
    (pkg / "other.py").write_text("\n\n" + OTHER.replace("return x + 1", "return   x  +  1   ") + "\n\n# note\n")
    assert build(fresh(), data).fingerprints() == before


def test_reformatting_and_comments_in_used_code_invalidate_nothing(userpkg):
    pkg, data, fresh = userpkg
    before = build(fresh(), data).fingerprints()
    reformatted = "# header comment\n\n\n" + STEPS.replace("return x * SCALE", "return (x *   SCALE)  # why")
    (pkg / "steps.py").write_text(reformatted.replace("def step_d(raw):", "\n\ndef step_d(raw):"))
    assert build(fresh(), data).fingerprints() == before


def test_change_to_an_unused_function_in_the_same_module_invalidates_nothing(userpkg):
    pkg, data, fresh = userpkg
    before = build(fresh(), data).fingerprints()
    (pkg / "steps.py").write_text(STEPS + "\n\ndef unused():\n    return 42\n")
    assert build(fresh(), data).fingerprints() == before


def test_source_is_fingerprinted_by_content(userpkg):
    _, data, fresh = userpkg
    steps = fresh()
    before = build(steps, data).fingerprints()
    data.write_text(data.read_text())  # rewritten, same bytes: nothing changes
    assert build(steps, data).fingerprints() == before
    data.write_text("a,b\n1,2\n3,5\n")
    assert changed(before, build(steps, data).fingerprints()) == {"raw", "a", "b", "c", "d"}


def test_params_hash_ignores_key_order_and_rejects_opaque_objects():
    assert params_hash({"a": 1, "b": [1, 2]}) == params_hash({"b": [1, 2], "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 2})
    with pytest.raises(PipelineError, match="cannot fingerprint"):
        params_hash({"x": object()})


def test_lambda_and_closure_values_are_hashed():
    def make(k):
        return lambda x: x + k

    assert code_hash(make(1)) != code_hash(make(2))
    assert code_hash(make(1)) == code_hash(make(1))
    same = lambda x: x + 1  # noqa: E731
    other = lambda x: x + 2  # noqa: E731
    assert code_hash(same) != code_hash(other)
