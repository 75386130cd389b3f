"""A small declarative API for pipelines of Beam data steps and Python/TensorFlow steps.

A :class:`Pipeline` is a DAG of :class:`Component`\\ s, each with one output named after it:

- ``source(name, paths, reader)``: reads files; fingerprinted by the files' content.
- ``beam_step(name, fn, inputs)``: ``fn(**input_pcollections, **params) -> PCollection``, a
  Beam data step (any PTransforms), run on whatever Beam runner the options select.
- ``python_step(name, fn, inputs)``: ``fn(**inputs, **params) -> value``, a training or
  evaluation step (TensorFlow/Keras); a collection input arrives as a list of rows in a
  deterministic order, a value input as the value itself. Runs inside the same Beam pipeline.

Rows are flat dicts of scalars (they are materialized as Parquet); values are any picklable
object. ``type_name`` and ``output_type`` name the MLMD execution and artifact types recorded
for a component (``Trainer``/``Model``, ``Pusher``/``PushedModel`` ...); a pusher's value is a
dict with a boolean ``pushed``, an evaluator's may carry ``blessed``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from pipelines import fingerprint as fpr
from pipelines.errors import PipelineError

__all__ = [
    "BEAM",
    "PYTHON",
    "SOURCE",
    "Component",
    "Pipeline",
    "beam_step",
    "python_step",
    "read_csv_rows",
    "source",
]

SOURCE = "source"
BEAM = "beam"
PYTHON = "python"


@dataclass(frozen=True, eq=False)
class Component:
    """One step of a pipeline; its single output is named after it."""

    name: str
    kind: str
    fn: Callable[..., Any]
    inputs: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    type_name: str = ""
    output_type: str = ""
    paths: tuple[str, ...] = ()

    @property
    def produces_rows(self) -> bool:
        """True when the output is a collection of rows (else one Python value)."""
        return self.kind != PYTHON

    def source_files(self) -> list[str]:
        """The files a source reads (globs expanded), sorted."""
        files: list[str] = []
        for p in self.paths:
            matched = sorted(glob.glob(os.fspath(p))) if any(c in str(p) for c in "*?[") else [os.fspath(p)]
            files.extend(matched)
        if not files:
            raise PipelineError(
                f"source {self.name!r} matched no files for {list(self.paths)}: check the path"
            )
        return sorted(files)


def source(name: str, paths: str | os.PathLike | Sequence[str | os.PathLike],
           reader: Callable[..., Any] | None = None, *, type_name: str = "ExampleGen",
           output_type: str = "Examples", **params: Any) -> Component:
    """A data source: ``reader(path, **params)`` yields the rows of one file (default: CSV)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return Component(name, SOURCE, reader or read_csv_rows, {}, dict(params), type_name, output_type,
                     tuple(os.fspath(p) for p in paths))


def beam_step(name: str, fn: Callable[..., Any], inputs: Mapping[str, str], *,
              type_name: str = "", output_type: str = "Examples", **params: Any) -> Component:
    """A Beam data step: ``fn(**{arg: PCollection}, **params)`` returns a PCollection of rows."""
    return Component(name, BEAM, fn, dict(inputs), dict(params),
                     type_name or _default_type(fn), output_type)


def python_step(name: str, fn: Callable[..., Any], inputs: Mapping[str, str], *,
                type_name: str = "", output_type: str = "Artifact", **params: Any) -> Component:
    """A Python step (training, evaluation, push): ``fn(**inputs, **params)`` returns a value."""
    return Component(name, PYTHON, fn, dict(inputs), dict(params),
                     type_name or _default_type(fn), output_type)


def _default_type(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', 'user')}.{getattr(fn, '__qualname__', 'step')}"


def read_csv_rows(path: str) -> Iterable[dict]:
    """Rows of a CSV file with typed columns (numbers as numbers, empty cells as None)."""
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path).to_pylist()


@dataclass(frozen=True, eq=False)
class Pipeline:
    """A named DAG of components; ``outputs`` are the results a run must produce (default: sinks)."""

    name: str
    components: tuple[Component, ...]
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        names = [c.name for c in self.components]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise PipelineError(f"pipeline {self.name!r} has duplicate component names {sorted(dup)}: rename them")
        for c in self.components:
            if not c.name or "/" in c.name:
                raise PipelineError(f"component name {c.name!r} is empty or contains '/': use a plain name")
            if c.kind == SOURCE and c.inputs:
                raise PipelineError(f"source {c.name!r} cannot have inputs")
            if c.kind != SOURCE and not c.inputs and c.kind == BEAM:
                raise PipelineError(f"Beam step {c.name!r} has no inputs: make it a source or give it inputs")
            for arg, parent in c.inputs.items():
                if parent not in names:
                    raise PipelineError(
                        f"component {c.name!r} input {arg!r} refers to unknown component {parent!r}; "
                        f"known: {sorted(names)}"
                    )
        for o in self.outputs:
            if o not in names:
                raise PipelineError(f"pipeline output {o!r} is not a component; known: {sorted(names)}")
        if not nx.is_directed_acyclic_graph(self.graph()):
            raise PipelineError(f"pipeline {self.name!r} has a cycle: components must form a DAG")

    def component(self, name: str) -> Component:
        """The component called ``name``."""
        for c in self.components:
            if c.name == name:
                return c
        raise PipelineError(f"no component {name!r} in pipeline {self.name!r}")

    def graph(self) -> nx.DiGraph:
        """parent -> child edges between component names."""
        g = nx.DiGraph()
        for c in self.components:
            g.add_node(c.name)
            for parent in c.inputs.values():
                g.add_edge(parent, c.name)
        return g

    def requested_outputs(self) -> tuple[str, ...]:
        """The declared outputs, or every sink when none were declared."""
        if self.outputs:
            return self.outputs
        g = self.graph()
        return tuple(n for n in nx.topological_sort(g) if g.out_degree(n) == 0)

    def topological_order(self) -> list[str]:
        """Component names, parents first (ties in declaration order)."""
        order = {c.name: i for i, c in enumerate(self.components)}
        return list(nx.lexicographical_topological_sort(self.graph(), key=lambda n: order[n]))

    def fingerprints(self) -> dict[str, str]:
        """Fingerprint of every component: code, parameters, parents (sources: file content)."""
        out: dict[str, str] = {}
        for name in self.topological_order():
            c = self.component(name)
            parents = {arg: out[p] for arg, p in c.inputs.items()}
            extra = fpr.content_hash(c.source_files()) if c.kind == SOURCE else ""
            out[name] = fpr.combine(c.kind, fpr.code_hash(c.fn), fpr.params_hash(c.params), parents, extra)
        return out

    def with_component(self, component: Component) -> Pipeline:
        """A copy with the component of the same name replaced (for iterating on one step)."""
        self.component(component.name)
        return Pipeline(self.name, tuple(component if c.name == component.name else c for c in self.components),
                        self.outputs)


def load_pipeline(path: str | os.PathLike) -> Pipeline:
    """Import a pipeline file and return its ``pipeline`` object (or ``build_pipeline()``)."""
    import hashlib
    import importlib.util
    import sys

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline file {path} does not exist: pass the path of a Python file")
    # a stable module name: the functions' fingerprints include it (str hash() changes per process)
    mod_name = f"frugal_pipeline_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"cannot import {path}: it must be a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent.resolve()))
    candidate = getattr(module, "pipeline", None)
    if candidate is None and callable(getattr(module, "build_pipeline", None)):
        candidate = module.build_pipeline()
    if not isinstance(candidate, Pipeline):
        found = [k for k, v in vars(module).items() if isinstance(v, Pipeline)]
        if len(found) == 1:
            candidate = getattr(module, found[0])
        else:
            raise PipelineError(
                f"{path} defines no `pipeline` (a pipelines.api.Pipeline) nor `build_pipeline()`: "
                "assign your Pipeline to a module-level variable named `pipeline`"
            )
    return candidate


__all__.append("load_pipeline")
