"""Component catalogue: the MLMD names a TFX pipeline writes, in the current and legacy styles.

Current style follows TFX 1.x as recorded in real stores: execution types named by class path,
artifact types (``Examples``, ``Model``, ``ModelBlessing``, ``PushedModel`` ...), contexts
``pipeline``, ``pipeline_run``, ``node`` and ``execution_cache``, event paths named by the
component's input/output keys. Legacy style follows pre-2020 TFX: short execution type names
with the state in an execution property, ``*Path`` artifact types, contexts ``run`` and
``component_run``, no Resolver (ModelValidator finds the blessed baseline itself).

Each component *kind* (``trainer``, ``evaluator``...) maps to a :class:`Component` per style;
the run engine speaks only in kinds and input/output keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.mlmd_writer import TypeSpec

__all__ = ["Component", "Style", "STYLES", "KINDS", "type_specs"]

KINDS = (
    "example_gen", "statistics_gen", "schema_gen", "example_validator", "transform", "tuner",
    "trainer", "resolver", "evaluator", "model_validator", "infra_validator", "pusher",
)


@dataclass(frozen=True)
class Component:
    """One component kind in one style.

    ``inputs``/``outputs`` map the engine's logical keys to (event path key, artifact type).
    """

    kind: str
    type_name: str
    node_id: str
    base_type: str | None
    inputs: tuple[tuple[str, str], ...]          # logical key -> event path key
    outputs: tuple[tuple[str, str, str], ...]    # logical key -> (path key, artifact type)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_paths", dict(self.inputs))
        object.__setattr__(self, "out_paths", {key: (path, art) for key, path, art in self.outputs})

    def in_key(self, logical: str) -> str:
        """Event path key of a logical input."""
        return self.in_paths[logical]

    def out(self, logical: str) -> tuple[str, str]:
        """(event path key, artifact type) of a logical output."""
        return self.out_paths[logical]


@dataclass(frozen=True)
class Style:
    """All names one producer style writes."""

    name: str
    components: dict[str, Component]
    artifact_types: tuple[TypeSpec, ...]
    context_types: tuple[TypeSpec, ...]
    legacy: bool


_C = "tfx.components."
_CURRENT_COMPONENTS = {
    "example_gen": Component(
        "example_gen", _C + "example_gen.csv_example_gen.component.CsvExampleGen", "CsvExampleGen", None,
        (), (("examples", "examples", "Examples"),)),
    "statistics_gen": Component(
        "statistics_gen", _C + "statistics_gen.component.StatisticsGen", "StatisticsGen", "PROCESS",
        (("examples", "examples"),), (("statistics", "statistics", "ExampleStatistics"),)),
    "schema_gen": Component(
        "schema_gen", _C + "schema_gen.component.SchemaGen", "SchemaGen", "PROCESS",
        (("statistics", "statistics"),), (("schema", "schema", "Schema"),)),
    "example_validator": Component(
        "example_validator", _C + "example_validator.component.ExampleValidator", "ExampleValidator", None,
        (("statistics", "statistics"), ("schema", "schema")),
        (("anomalies", "anomalies", "ExampleAnomalies"),)),
    "transform": Component(
        "transform", _C + "transform.component.Transform", "Transform", "TRANSFORM",
        (("examples", "examples"), ("schema", "schema")),
        (("transform_graph", "transform_graph", "TransformGraph"),
         ("transformed_examples", "transformed_examples", "Examples"))),
    "tuner": Component(
        "tuner", _C + "tuner.component.Tuner", "Tuner", None,
        (("examples", "examples"), ("schema", "schema"), ("transform_graph", "transform_graph")),
        (("best_hyperparameters", "best_hyperparameters", "HyperParameters"),
         ("tuner_results", "tuner_results", "TunerResults"))),
    "trainer": Component(
        "trainer", _C + "trainer.component.Trainer", "Trainer", "TRAIN",
        (("examples", "examples"), ("schema", "schema"), ("transform_graph", "transform_graph"),
         ("hyperparameters", "hyperparameters")),
        (("model", "model", "Model"), ("model_run", "model_run", "ModelRun"))),
    "resolver": Component(
        "resolver", "tfx.dsl.components.common.resolver.Resolver", "latest_blessed_model_resolver", None,
        (), (("model", "model", "Model"), ("blessing", "model_blessing", "ModelBlessing"))),
    "evaluator": Component(
        "evaluator", _C + "evaluator.component.Evaluator", "Evaluator", "EVALUATE",
        (("examples", "examples"), ("model", "model"), ("baseline_model", "baseline_model")),
        (("evaluation", "evaluation", "ModelEvaluation"), ("blessing", "blessing", "ModelBlessing"))),
    "infra_validator": Component(
        "infra_validator", _C + "infra_validator.component.InfraValidator", "InfraValidator", None,
        (("model", "model"), ("examples", "examples")), (("blessing", "blessing", "InfraBlessing"),)),
    "pusher": Component(
        "pusher", _C + "pusher.component.Pusher", "Pusher", "DEPLOY",
        (("model", "model"), ("blessing", "model_blessing"), ("infra_blessing", "infra_blessing")),
        (("pushed_model", "pushed_model", "PushedModel"),)),
}

_LEGACY_COMPONENTS = {
    "example_gen": Component("example_gen", "CsvExampleGen", "CsvExampleGen", None, (),
                             (("examples", "examples", "ExamplesPath"),)),
    "statistics_gen": Component("statistics_gen", "StatisticsGen", "StatisticsGen", None,
                                (("examples", "input_data"),),
                                (("statistics", "output", "ExampleStatisticsPath"),)),
    "schema_gen": Component("schema_gen", "SchemaGen", "SchemaGen", None, (("statistics", "stats"),),
                            (("schema", "output", "SchemaPath"),)),
    "example_validator": Component("example_validator", "ExampleValidator", "ExampleValidator", None,
                                   (("statistics", "stats"), ("schema", "schema")),
                                   (("anomalies", "output", "ExampleValidationPath"),)),
    "transform": Component("transform", "Transform", "Transform", None,
                           (("examples", "input_data"), ("schema", "schema")),
                           (("transform_graph", "transform_output", "TransformPath"),
                            ("transformed_examples", "transformed_examples", "ExamplesPath"))),
    "trainer": Component("trainer", "Trainer", "Trainer", None,
                         (("examples", "examples"), ("schema", "schema"),
                          ("transform_graph", "transform_output"), ("hyperparameters", "hyperparameters")),
                         (("model", "output", "ModelExportPath"),)),
    "evaluator": Component("evaluator", "Evaluator", "Evaluator", None,
                           (("examples", "examples"), ("model", "model_exports")),
                           (("evaluation", "output", "ModelEvalPath"),)),
    "model_validator": Component("model_validator", "ModelValidator", "ModelValidator", None,
                                 (("examples", "examples"), ("model", "model")),
                                 (("blessing", "blessing", "ModelBlessingPath"),)),
    "pusher": Component("pusher", "Pusher", "Pusher", None,
                        (("model", "model_export"), ("blessing", "model_blessing")),
                        (("pushed_model", "model_push", "ModelPushPath"),)),
}

_CURRENT_ARTIFACTS = (
    TypeSpec("artifact", "Examples", (("span", "INT"), ("split_names", "STRING"), ("version", "INT")), "DATASET"),
    TypeSpec("artifact", "ExampleStatistics", (("span", "INT"), ("split_names", "STRING")), "STATISTICS"),
    TypeSpec("artifact", "Schema"),
    TypeSpec("artifact", "ExampleAnomalies", (("span", "INT"), ("split_names", "STRING"))),
    TypeSpec("artifact", "TransformGraph"),
    TypeSpec("artifact", "HyperParameters"),
    TypeSpec("artifact", "TunerResults"),
    TypeSpec("artifact", "ModelRun"),
    TypeSpec("artifact", "Model", (), "MODEL"),
    TypeSpec("artifact", "ModelEvaluation"),
    TypeSpec("artifact", "ModelBlessing"),
    TypeSpec("artifact", "InfraBlessing"),
    TypeSpec("artifact", "PushedModel", (), "MODEL"),
)
_LEGACY_ARTIFACT_PROPS = (("type_name", "STRING"), ("split", "STRING"), ("state", "STRING"),
                          ("name", "STRING"), ("span", "INT"))
_LEGACY_ARTIFACTS = tuple(
    TypeSpec("artifact", name, _LEGACY_ARTIFACT_PROPS)
    for name in ("ExamplesPath", "ExampleStatisticsPath", "SchemaPath", "ExampleValidationPath",
                 "TransformPath", "ModelExportPath", "ModelEvalPath", "ModelBlessingPath", "ModelPushPath")
)

_CURRENT_CONTEXTS = tuple(TypeSpec("context", n) for n in ("pipeline", "pipeline_run", "node", "execution_cache"))
_LEGACY_CONTEXTS = (
    TypeSpec("context", "run", (("pipeline_name", "STRING"), ("run_id", "STRING"))),
    TypeSpec("context", "component_run",
             (("pipeline_name", "STRING"), ("run_id", "STRING"), ("component_id", "STRING"))),
)

# Execution properties declared on legacy execution types (everything was a STRING property).
LEGACY_EXECUTION_PROPS = {
    "example_gen": ("input_base", "input_config", "output_config"),
    "statistics_gen": (),
    "schema_gen": (),
    "example_validator": (),
    "transform": ("module_file",),
    "trainer": ("module_file", "train_args", "eval_args", "custom_config", "warm_starting"),
    "evaluator": ("feature_slicing_spec",),
    "model_validator": (),
    "pusher": ("push_destination",),
}
_LEGACY_COMMON = ("state", "pipeline_name", "pipeline_root", "run_id", "component_id")

STYLES = {
    "current": Style("current", _CURRENT_COMPONENTS, _CURRENT_ARTIFACTS, _CURRENT_CONTEXTS, False),
    "legacy": Style("legacy", _LEGACY_COMPONENTS, _LEGACY_ARTIFACTS, _LEGACY_CONTEXTS, True),
}


def type_specs(style: Style) -> list[TypeSpec]:
    """Every type the style's stores declare, in the order TFX registers them."""
    specs: list[TypeSpec] = list(style.context_types)
    for comp in style.components.values():
        if style.legacy:
            props = tuple((p, "STRING") for p in _LEGACY_COMMON + LEGACY_EXECUTION_PROPS[comp.kind])
            specs.append(TypeSpec("execution", comp.type_name, props))
        else:
            specs.append(TypeSpec("execution", comp.type_name, (), comp.base_type))
    specs.extend(style.artifact_types)
    return specs
