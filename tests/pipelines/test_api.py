"""Pipeline API: validation with actionable errors, graph, order, outputs, loading files."""

from __future__ import annotations

import pytest

from pipelines.api import Pipeline, beam_step, load_pipeline, python_step, source
from pipelines.errors import PipelineError


def ident(x):
    return x


def model(x, epochs=1):
    return {"epochs": epochs}


def small(path="data.csv") -> Pipeline:
    return Pipeline(
        "p",
        (
            source("raw", path),
            beam_step("clean", ident, {"x": "raw"}),
            python_step("train", model, {"x": "clean"}, type_name="Trainer", output_type="Model", epochs=2),
            beam_step("stats", ident, {"x": "clean"}),
        ),
    )


def test_graph_order_and_default_outputs():
    p = small()
    assert sorted(p.graph().edges) == [("clean", "stats"), ("clean", "train"), ("raw", "clean")]
    assert p.topological_order() == ["raw", "clean", "train", "stats"]
    assert p.requested_outputs() == ("train", "stats")
    assert p.component("train").params == {"epochs": 2}
    assert p.component("train").type_name == "Trainer" and not p.component("train").produces_rows
    assert p.component("clean").type_name.endswith("ident") and p.component("clean").produces_rows


def test_with_component_replaces_one_step():
    p = small()
    q = p.with_component(python_step("train", model, {"x": "clean"}, epochs=3))
    assert q.component("train").params == {"epochs": 3}
    assert p.component("train").params == {"epochs": 2}
    with pytest.raises(PipelineError, match="no component"):
        p.with_component(beam_step("nope", ident, {"x": "raw"}))


@pytest.mark.parametrize(
    "components, message",
    [
        ((source("a", "f"), source("a", "g")), "duplicate component names"),
        ((source("a", "f"), beam_step("b", ident, {"x": "zzz"})), "unknown component 'zzz'"),
        ((beam_step("b", ident, {"x": "c"}), beam_step("c", ident, {"x": "b"})), "cycle"),
        ((source("a/b", "f"),), "contains '/'"),
        ((source("a", "f"), beam_step("b", ident, {})), "no inputs"),
    ],
)
def test_invalid_pipelines_are_rejected_with_a_fix(components, message):
    with pytest.raises(PipelineError, match=message):
        Pipeline("bad", components)


def test_unknown_output_is_rejected():
    with pytest.raises(PipelineError, match="not a component"):
        Pipeline("p", (source("a", "f"),), outputs=("b",))


def test_source_without_files_is_an_error(tmp_path):
    p = small(str(tmp_path / "*.csv"))
    with pytest.raises(PipelineError, match="matched no files"):
        p.fingerprints()


def test_load_pipeline_from_file(tmp_path):
    (tmp_path / "data.csv").write_text("a\n1\n")
    f = tmp_path / "my_pipeline.py"
    f.write_text(
        "from pipelines.api import Pipeline, source, beam_step\n"
        "def keep(raw):\n    return raw\n"
        f"pipeline = Pipeline('mine', (source('raw', {str(tmp_path / 'data.csv')!r}),"
        " beam_step('keep', keep, {'raw': 'raw'})))\n"
    )
    p = load_pipeline(f)
    assert p.name == "mine" and p.topological_order() == ["raw", "keep"]
    assert len(p.fingerprints()) == 2
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(PipelineError, match="defines no `pipeline`"):
        load_pipeline(tmp_path / "empty.py")
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipeline(tmp_path / "missing.py")


def test_component_equality_and_hash_follow_the_fingerprint():
    import pickle

    params = {"epochs": 2}
    a = python_step("train", model, {"x": "clean"}, **params)
    b = python_step("train", model, {"x": "clean"}, epochs=2)
    c = python_step("train", model, {"x": "clean"}, epochs=3)
    assert a is not b and a == b and hash(a) == hash(b) and len({a, b, c}) == 2
    assert a != c and a.fingerprint != c.fingerprint
    params["epochs"] = 9  # the caller's dict is copied: the component does not change
    assert a.params == {"epochs": 2} and a == b
    with pytest.raises(TypeError):
        a.params["epochs"] = 5  # type: ignore[index]
    back = pickle.loads(pickle.dumps(a))
    assert back == a and back.params == {"epochs": 2}
    with pytest.raises(TypeError):
        back.params["epochs"] = 5  # type: ignore[index]
