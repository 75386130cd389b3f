"""Roles: the one mapping from MLMD type names to what a type *means* to frugal.

Producers name their types differently: TFX 1.x writes execution types as class paths
(``tfx.components.trainer.component.Trainer``), pre-2020 TFX writes ``Trainer``,
``ModelExportPath`` and ``ModelPushPath``, other producers use their own names. Every other
module asks this one for roles (through the ``type_roles`` warehouse table written by
:func:`write_type_roles`) and never compares type-name strings itself.

A :class:`Roles` is an ordered list of rules. Exact names win over patterns; earlier rules
win over later ones. Presets: ``tfx`` (current TFX), ``tfx-legacy`` and ``fallback``
(suffix/regex rules that catch most other producers). Users extend them with a TOML file::

    presets = ["tfx", "tfx-legacy", "fallback"]     # optional, this is the default

    [execution]                                      # exact type name = role
    "acme.ml.TrainModel" = "trainer"

    [artifact]
    "acme.SavedModelDir" = "model"

    [context]
    "experiment" = "pipeline"

    [[pattern]]                                      # case-insensitive regex, full match
    kind = "execution"
    regex = ".*\\.Fit[A-Za-z]*"
    role = "trainer"
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from analysis.errors import AnalysisError

__all__ = [
    "EXECUTION_ROLES",
    "ARTIFACT_ROLES",
    "CONTEXT_ROLES",
    "KINDS",
    "PRESETS",
    "RoleRule",
    "Roles",
    "default_roles",
    "load_roles",
    "resolve_roles",
    "write_type_roles",
]

KINDS = ("execution", "artifact", "context")

EXECUTION_ROLES = (
    "data-ingest", "validation", "transform", "tuner", "trainer", "evaluator",
    "infra-validator", "pusher", "resolver", "inference",
)
ARTIFACT_ROLES = (
    "examples", "statistics", "schema", "anomalies", "transform-graph", "hyperparameters",
    "model", "model-run", "evaluation", "blessing", "infra-blessing", "deployment", "inference-result",
)
CONTEXT_ROLES = ("pipeline", "pipeline-run", "node", "cache")
_VALID = {"execution": EXECUTION_ROLES, "artifact": ARTIFACT_ROLES, "context": CONTEXT_ROLES}


@dataclass(frozen=True)
class RoleRule:
    """Map a type name of one kind to a role: exactly (``regex`` False) or by full regex match."""

    kind: str
    pattern: str
    role: str
    regex: bool = False

    def matches(self, kind: str, type_name: str) -> bool:
        if kind != self.kind:
            return False
        if not self.regex:
            return type_name == self.pattern
        return re.fullmatch(self.pattern, type_name, flags=re.IGNORECASE) is not None


@dataclass(frozen=True)
class Roles:
    """An ordered set of rules; ``role_of`` resolves exact rules first, then patterns."""

    name: str
    rules: tuple[RoleRule, ...] = field(default_factory=tuple)

    def role_of(self, kind: str, type_name: str | None) -> tuple[str | None, str | None]:
        """Return (role, how) for a type name; (None, None) when no rule maps it."""
        if not type_name:
            return None, None
        for rule in self.rules:
            if not rule.regex and rule.matches(kind, type_name):
                return rule.role, "exact"
        for rule in self.rules:
            if rule.regex and rule.matches(kind, type_name):
                return rule.role, f"pattern {rule.pattern}"
        return None, None

    def extended(self, other: Roles) -> Roles:
        """Rules of ``other`` first (they win), then these."""
        return Roles(f"{other.name}+{self.name}", other.rules + self.rules)

    @property
    def fingerprint(self) -> str:
        """Stable text that changes whenever a rule changes (drives re-analysis)."""
        import hashlib

        text = "\n".join(f"{r.kind}|{r.pattern}|{r.role}|{r.regex}" for r in self.rules)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _exact(kind: str, mapping: dict[str, str]) -> tuple[RoleRule, ...]:
    return tuple(RoleRule(kind, name, role) for name, role in mapping.items())


_TFX_EXECUTIONS = {
    "tfx.components.example_gen.csv_example_gen.component.CsvExampleGen": "data-ingest",
    "tfx.components.example_gen.import_example_gen.component.ImportExampleGen": "data-ingest",
    "tfx.components.example_gen.big_query_example_gen.component.BigQueryExampleGen": "data-ingest",
    "tfx.extensions.google_cloud_big_query.example_gen.component.BigQueryExampleGen": "data-ingest",
    "tfx.components.example_gen.component.FileBasedExampleGen": "data-ingest",
    "tfx.components.example_gen.component.QueryBasedExampleGen": "data-ingest",
    "tfx.dsl.components.common.importer.Importer": "data-ingest",
    "tfx.components.statistics_gen.component.StatisticsGen": "validation",
    "tfx.components.schema_gen.component.SchemaGen": "validation",
    "tfx.components.schema_gen.import_schema_gen.component.ImportSchemaGen": "validation",
    "tfx.components.example_validator.component.ExampleValidator": "validation",
    "tfx.components.transform.component.Transform": "transform",
    "tfx.components.tuner.component.Tuner": "tuner",
    "tfx.components.trainer.component.Trainer": "trainer",
    "tfx.extensions.google_cloud_ai_platform.trainer.component.Trainer": "trainer",
    "tfx.components.evaluator.component.Evaluator": "evaluator",
    "tfx.components.model_validator.component.ModelValidator": "evaluator",
    "tfx.components.infra_validator.component.InfraValidator": "infra-validator",
    "tfx.components.pusher.component.Pusher": "pusher",
    "tfx.extensions.google_cloud_ai_platform.pusher.component.Pusher": "pusher",
    "tfx.dsl.components.common.resolver.Resolver": "resolver",
    "tfx.components.bulk_inferrer.component.BulkInferrer": "inference",
}
_TFX_ARTIFACTS = {
    "Examples": "examples",
    "ExampleStatistics": "statistics",
    "Schema": "schema",
    "ExampleAnomalies": "anomalies",
    "TransformGraph": "transform-graph",
    "TransformCache": "transform-graph",
    "HyperParameters": "hyperparameters",
    "TunerResults": "hyperparameters",
    "Model": "model",
    "ModelRun": "model-run",
    "ModelEvaluation": "evaluation",
    "ModelBlessing": "blessing",
    "InfraBlessing": "infra-blessing",
    "PushedModel": "deployment",
    "InferenceResult": "inference-result",
}
_TFX_CONTEXTS = {
    "pipeline": "pipeline",
    "pipeline_run": "pipeline-run",
    "node": "node",
    "execution_cache": "cache",
}
# Pre-2020 TFX (0.1x): component class names as execution types, *Path artifact types,
# `run` and `component_run` contexts.
_LEGACY_EXECUTIONS = {
    "CsvExampleGen": "data-ingest",
    "ImportExampleGen": "data-ingest",
    "BigQueryExampleGen": "data-ingest",
    "ExampleGen": "data-ingest",
    "StatisticsGen": "validation",
    "SchemaGen": "validation",
    "ExampleValidator": "validation",
    "Transform": "transform",
    "Tuner": "tuner",
    "Trainer": "trainer",
    "Evaluator": "evaluator",
    "ModelValidator": "evaluator",
    "InfraValidator": "infra-validator",
    "Pusher": "pusher",
    "ResolverNode": "resolver",
    "LatestBlessedModelResolver": "resolver",
    "BulkInferrer": "inference",
}
_LEGACY_ARTIFACTS = {
    "ExamplesPath": "examples",
    "ExampleStatisticsPath": "statistics",
    "SchemaPath": "schema",
    "ExampleValidationPath": "anomalies",
    "ExampleAnomaliesPath": "anomalies",
    "TransformPath": "transform-graph",
    "ModelExportPath": "model",
    "ModelEvalPath": "evaluation",
    "ModelBlessingPath": "blessing",
    "ModelPushPath": "deployment",
}
_LEGACY_CONTEXTS = {"run": "pipeline-run", "component_run": "node"}

# Fallback: suffixes that most producers share. Full-match, case-insensitive.
_FALLBACK = (
    RoleRule("execution", r".*(infra_?validator)", "infra-validator", True),
    RoleRule("execution", r".*(evaluator|evaluate|eval|model_?validator)", "evaluator", True),
    RoleRule("execution", r".*(example_?gen|importer|ingest\w*|data_?loader)", "data-ingest", True),
    RoleRule("execution", r".*(statistics_?gen|schema_?gen|validator|validate\w*|data_?check\w*)", "validation", True),
    RoleRule("execution", r".*(transform\w*|preprocess\w*|feature\w*)", "transform", True),
    RoleRule("execution", r".*(tuner|tune|hpo|hyper\w*)", "tuner", True),
    RoleRule("execution", r".*(trainer|train|training|fit)", "trainer", True),
    RoleRule("execution", r".*(pusher|push|deploy\w*|publish\w*|serve)", "pusher", True),
    RoleRule("execution", r".*(resolver\w*)", "resolver", True),
    RoleRule("execution", r".*(bulk_?inferrer|inference|predict\w*)", "inference", True),
    RoleRule("artifact", r".*(pushed_?model|model_?push\w*|deployment|deployed\w*)", "deployment", True),
    RoleRule("artifact", r".*(infra_?blessing)(path)?", "infra-blessing", True),
    RoleRule("artifact", r".*(blessing)(path)?", "blessing", True),
    RoleRule("artifact", r".*(model_?evaluation|evaluation|metrics)(path)?", "evaluation", True),
    RoleRule("artifact", r".*(model_?run)", "model-run", True),
    RoleRule("artifact", r".*(model|model_?export|saved_?model)(path)?", "model", True),
    RoleRule("artifact", r".*(examples|dataset|data)(path)?", "examples", True),
    RoleRule("artifact", r".*(statistics|stats)(path)?", "statistics", True),
    RoleRule("artifact", r".*(schema)(path)?", "schema", True),
    RoleRule("artifact", r".*(anomalies|validation)(path)?", "anomalies", True),
    RoleRule("context", r".*(pipeline_?run|run)", "pipeline-run", True),
    RoleRule("context", r".*pipeline", "pipeline", True),
    RoleRule("context", r".*(node|component\w*)", "node", True),
)

PRESETS: dict[str, Roles] = {
    "tfx": Roles(
        "tfx",
        _exact("execution", _TFX_EXECUTIONS) + _exact("artifact", _TFX_ARTIFACTS)
        + _exact("context", _TFX_CONTEXTS),
    ),
    "tfx-legacy": Roles(
        "tfx-legacy",
        _exact("execution", _LEGACY_EXECUTIONS) + _exact("artifact", _LEGACY_ARTIFACTS)
        + _exact("context", _LEGACY_CONTEXTS),
    ),
    "fallback": Roles("fallback", _FALLBACK),
}
DEFAULT_PRESETS = ("tfx", "tfx-legacy", "fallback")


def default_roles() -> Roles:
    """TFX current, then TFX legacy, then the suffix/regex fallback."""
    return _combine(DEFAULT_PRESETS)


def _combine(names: tuple[str, ...] | list[str]) -> Roles:
    rules: tuple[RoleRule, ...] = ()
    for name in names:
        if name not in PRESETS:
            raise AnalysisError(
                f"unknown roles preset {name!r}; choose from {', '.join(sorted(PRESETS))}"
            )
        rules += PRESETS[name].rules
    return Roles("+".join(names), rules)


def _check(kind: str, role: str, where: str) -> None:
    if role not in _VALID[kind]:
        raise AnalysisError(
            f"{where}: {role!r} is not a {kind} role; use one of {', '.join(_VALID[kind])}"
        )


def load_roles(path: str | Path) -> Roles:
    """Read a roles TOML file (format in the module docstring) on top of its presets."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise AnalysisError(f"roles file {path} does not exist; pass an existing TOML file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise AnalysisError(f"roles file {path} is not valid TOML ({exc}); fix the syntax") from exc
    unknown = set(data) - {"presets", "pattern", *KINDS}
    if unknown:
        raise AnalysisError(
            f"roles file {path}: unknown section(s) {', '.join(sorted(unknown))}; "
            "allowed: presets, execution, artifact, context, [[pattern]]"
        )
    rules: list[RoleRule] = []
    for kind in KINDS:
        table = data.get(kind, {})
        if not isinstance(table, dict):
            raise AnalysisError(f"roles file {path}: [{kind}] must be a table of \"type name\" = \"role\"")
        for name, role in table.items():
            _check(kind, str(role), f"roles file {path} [{kind}] {name!r}")
            rules.append(RoleRule(kind, name, str(role)))
    for i, pat in enumerate(data.get("pattern", [])):
        where = f"roles file {path} [[pattern]] #{i + 1}"
        if not isinstance(pat, dict) or not {"kind", "regex", "role"} <= set(pat):
            raise AnalysisError(f"{where}: needs kind, regex and role")
        if pat["kind"] not in KINDS:
            raise AnalysisError(f"{where}: kind must be one of {', '.join(KINDS)}")
        _check(pat["kind"], pat["role"], where)
        try:
            re.compile(pat["regex"])
        except re.error as exc:
            raise AnalysisError(f"{where}: regex {pat['regex']!r} does not compile ({exc})") from exc
        rules.append(RoleRule(pat["kind"], pat["regex"], pat["role"], regex=True))
    presets = data.get("presets", list(DEFAULT_PRESETS))
    if not isinstance(presets, list):
        raise AnalysisError(f"roles file {path}: presets must be a list such as [\"tfx\", \"fallback\"]")
    return _combine(presets).extended(Roles(path.stem, tuple(rules)))


def resolve_roles(roles: Roles | str | Path | None) -> Roles:
    """Accept a Roles, a preset name, a TOML path, or None (the default presets)."""
    if roles is None:
        return default_roles()
    if isinstance(roles, Roles):
        return roles
    text = str(roles)
    if text in PRESETS:
        return PRESETS[text]
    return load_roles(text)


def write_type_roles(con, roles: Roles) -> int:
    """(Re)write table ``type_roles(kind, type_name, role, matched_by)`` for every type name
    seen in the warehouse; unmapped names get role NULL so the report can list them."""
    names = con.execute(
        """
        SELECT DISTINCT kind, name FROM (
            SELECT kind, name FROM types
            UNION ALL SELECT 'execution', type_name FROM executions
            UNION ALL SELECT 'artifact', type_name FROM artifacts
            UNION ALL SELECT 'context', type_name FROM contexts
        ) WHERE name IS NOT NULL AND kind IN ('execution', 'artifact', 'context')
        """
    ).fetchall()
    rows = [(kind, name, *roles.role_of(kind, name)) for kind, name in names]
    con.execute("DROP TABLE IF EXISTS type_roles")
    con.execute(
        "CREATE TABLE type_roles (kind VARCHAR, type_name VARCHAR, role VARCHAR, matched_by VARCHAR,"
        " PRIMARY KEY (kind, type_name))"
    )
    if rows:
        con.executemany("INSERT INTO type_roles VALUES (?, ?, ?, ?)", rows)
    return len(rows)
