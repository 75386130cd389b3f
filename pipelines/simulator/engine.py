"""The run engine: plays one pipeline's scheduled runs and emits TFX-shaped MLMD rows.

Each run walks the pipeline's nodes in topological order. A node whose inputs and
configuration equal those of its last COMPLETE execution is CACHED (synchronous pipelines:
a CACHED execution with INPUT events and OUTPUT events to the *existing* artifacts, associated
with the original ``execution_cache`` context) or does not trigger at all (asynchronous
pipelines). Otherwise it executes: COMPLETE with new output artifacts, or FAILED with none.
The Evaluator's cache key includes the Resolver's baseline, so the first cached run after a
new blessed model re-runs Evaluator and Pusher and pushes the same model again, as TFX does.

Some runs redo work on unchanged data, as production pipelines do: pipelines with caching
off, manual re-runs (often retries after an unrelated failure) and cache-key changes that
change no recorded configuration. The engine tracks what every artifact *contains* (a
re-executed node fed content-identical inputs with the same configuration produces
content-identical outputs), so the ground truth names every execution that re-did the work
of an earlier COMPLETE execution, however deep in the pipeline.

Rows go straight into a :class:`provenance.mlmd_writer.BulkStoreWriter`; ground truth for
every trainer execution and every redundant execution is collected alongside.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import deque
from datetime import datetime, timezone

from pipelines.simulator import model as M
from pipelines.simulator.catalog import LEGACY_EXECUTION_PROPS, Style
from provenance.mlmd_writer import BulkStoreWriter, struct_value

__all__ = ["StoreEmitter", "PipelineSim", "EXECUTION_STATE_NAMES"]

COMPLETE, FAILED, CACHED = 3, 4, 5
INPUT, OUTPUT, INTERNAL_OUTPUT = 3, 4, 6
LIVE = 2
EXECUTION_STATE_NAMES = {COMPLETE: "COMPLETE", FAILED: "FAILED", CACHED: "CACHED"}
_LEGACY_STATE = {COMPLETE: "complete", FAILED: "new", CACHED: "cached"}
_SPLITS = '["train", "eval"]'
_SKIPPED = 0


def _pretty(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


class StoreEmitter:
    """Per-store state shared by the pipelines written into one MLMD store."""

    def __init__(self, writer: BulkStoreWriter, style: Style, epoch_ms: int):
        self.w = writer
        self.style = style
        self.legacy = style.legacy
        self.epoch_ms = epoch_ms
        tid = writer.type_ids
        self.exec_type = {k: tid[("execution", c.type_name)] for k, c in style.components.items()}
        self.art_type = {s.name: tid[("artifact", s.name)] for s in style.artifact_types}
        self.ctx_type = {s.name: tid[("context", s.name)] for s in style.context_types}
        self.run_names: set[str] = set()
        self.trainers: list[dict] = []
        self.redundant: list[dict] = []
        self._art_templates: dict[tuple, int] = {}
        self.struct_ok = struct_value({"train": 1.0, "eval": 1.0})
        self.struct_anomalous = (struct_value({"train": 0.0, "eval": 1.0}),
                                 struct_value({"train": 1.0, "eval": 0.0}),
                                 struct_value({"train": 0.0, "eval": 0.0}))
        # ExampleStatistics.sample_rate_by_split exactly as TFX 1.x writes it (a JSON string in a Struct)
        self.sample_rate = "mlmd-struct::CioKCV9fdmFsdWVfXxIdGht7ImV2YWwiOiAxLjAsICJ0cmFpbiI6IDEuMH0="

    def art_template(self, art_type: str, tfx_version: str, pipeline: str) -> int:
        """Template id of the properties every artifact of a type carries (per pipeline)."""
        key = (art_type, tfx_version, pipeline if self.legacy else "")
        tid = self._art_templates.get(key)
        if tid is None:
            if self.legacy:
                rows = [("type_name", 0, None, art_type), ("state", 0, None, "published"),
                        ("split", 0, None, "")]
            else:
                rows = [("tfx_version", 1, None, tfx_version), ("is_external", 1, 0, None)]
                if art_type == "ExampleStatistics":
                    rows += [("split_names", 0, None, _SPLITS), ("span", 0, 0, None),
                             ("stats_dashboard_link", 1, None, ""),
                             ("sample_rate_by_split", 1, None, self.sample_rate)]
                elif art_type == "ExampleAnomalies":
                    rows += [("split_names", 0, None, _SPLITS), ("span", 0, 0, None)]
                elif art_type == "Examples":
                    rows += [("split_names", 0, None, _SPLITS), ("payload_format", 1, None, "FORMAT_TF_EXAMPLE"),
                             ("file_format", 1, None, "tfrecords_gzip")]
            tid = self.w.template(rows)
            self._art_templates[key] = tid
        return tid

    def unique_run_name(self, name: str) -> str:
        while name in self.run_names:
            name = name + "_"
        self.run_names.add(name)
        return name


class _Node:
    __slots__ = ("node_id", "kind", "branch", "ctx", "key", "outputs", "cache_ctx", "templates", "salt",
                 "done", "recorded")

    def __init__(self, node_id: str, kind: str, branch: int):
        self.node_id = node_id
        self.kind = kind
        self.branch = branch
        self.ctx = 0
        self.key = None
        self.outputs: dict[str, list[int]] = {}
        self.cache_ctx = 0
        self.templates: dict[tuple, int] = {}
        self.salt = 0                       # bumped by a cache-key change of this node alone
        self.done: dict[tuple, tuple] = {}  # content signature -> (first COMPLETE id, its outputs)
        self.recorded: set[tuple] = set()   # signatures as the store records them, COMPLETE runs


class PipelineSim:
    """One pipeline's state across its runs; ``run(t_ms)`` emits one scheduled run."""

    def __init__(self, spec: M.PipelineSpec, seed: int, store: StoreEmitter,
                 model: M.OutcomeModel = M.DEFAULT_OUTCOME_MODEL):
        self.spec = spec
        self.s = store
        self.w = store.w
        self.rng = random.Random(f"frugal-sim:{seed}:{spec.index}")
        # the outcome model's own stream: the default model draws nothing from it
        self.model = model
        self.orng = random.Random(f"frugal-outcome:{seed}:{spec.index}")
        self.pipe = M.pipeline_outcome(spec, model, self.orng)
        self.sync = spec.mode == "sync"
        self.current = not store.legacy
        self.root = f"/srv/tfx/pipelines/{spec.name}/root"
        n = spec.n_trainers
        self.nodes: dict[str, _Node] = {}
        self.pipeline_ctx = 0
        self.code_version = 0
        self.transform_version = 0
        self.hparam_version = [0] * n
        self.structure_version = 0
        self.has_transform = spec.has_transform
        self.has_tuner = spec.has_tuner and self.current
        self.has_infra = spec.has_infra_validator and self.current
        self.window = spec.window
        self.spans: list[tuple[int, int, bool, float]] = []  # (span, examples id, anomaly, drift)
        self.span_no = 0
        self.health = [0.0] * n
        self.code_age = [1_000_000] * n     # trainings since the last code change, per branch
        self.history = [deque(maxlen=5) for _ in range(n)]
        self.latest_blessed: list[tuple[int, int, str] | None] = [None] * n
        self.model_fate: dict[int, tuple[bool, bool, dict]] = {}  # model id -> blessed, infra ok, gt row
        self.model_uri: dict[int, str] = {}
        self.busy_until = 0
        self.epochs = [self.rng.choice((5, 10, 20, 40)) for _ in range(n)]
        self.lr = [self.rng.choice((0.1, 0.03, 0.01, 0.003, 0.001)) for _ in range(n)]
        self.steps = [self.rng.choice((1000, 5000, 10000, 50000)) for _ in range(n)]
        self.runs = self.cached_runs = self.skipped_runs = 0
        self.run_name = ""
        self.run_ctx = 0
        self.run_id = ""
        # redundant work: why the cache misses, and what each artifact contains
        self.salt = 0                       # bumped by a cache-key change of every node
        self.run_cache_off = False
        self.run_cause = ""
        self.run_failed = False
        self.manual_reruns = self.cache_key_changes = 0
        self.alias: dict[int, int] = {}     # artifact -> the artifact it is content-identical to
        self.fp_alias: dict[int, int] = {}  # the same, for artifacts whose fingerprint records it
        self.span_fp = ""
        self.validated: tuple | None = None  # (span, anomaly, anomalies struct) of the newest span
        self.last_redundant = False

    # ---------------------------------------------------------------- helpers
    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _node(self, kind: str, branch: int = 0) -> _Node:
        comp = self.s.style.components[kind]
        node_id = comp.node_id
        if branch:
            node_id = f"{node_id}_{M.TRAINER_VARIANTS[branch]}"
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = _Node(node_id, kind, branch)
        return node

    def _duration(self, kind: str, sd: float = 0.3) -> float:
        return M.DURATION_MEDIAN_S[kind] * self.spec.size * math.exp(self.rng.gauss(0.0, sd))

    def _exec_props(self, node: _Node, token) -> list[tuple[str, int, int | None, str | None]]:
        """Execution properties as the component records them (strings are JSON, like TFX)."""
        kind, spec, b = node.kind, self.spec, node.branch
        code = hashlib.sha256(f"{spec.name}:{node.kind}:{self.code_version}".encode()).hexdigest()
        hp = {"epochs": self.epochs[b], "learning_rate": self.lr[b], "hidden": [64, 32][: 1 + b % 2],
              "seed": self.hparam_version[b]}
        if self.current:
            wheel = f"{self.root}/_wheels/tfx_user_code_{node.node_id}-0.0+{code}-py3-none-any.whl"
            if kind == "example_gen":
                return [("input_base", 1, None, f"gs://{spec.name}-data/ingest"),
                        ("input_config", 1, None, _pretty({"splits": [{"name": "single_split", "pattern": "span-{SPAN}/*"}]})),
                        ("output_config", 1, None, _pretty({"split_config": {"splits": [
                            {"hash_buckets": 2, "name": "train"}, {"hash_buckets": 1, "name": "eval"}]}})),
                        ("output_data_format", 1, 6, None), ("output_file_format", 1, 5, None)]
            if kind in ("statistics_gen", "example_validator"):
                return [("exclude_splits", 1, None, "[]")]
            if kind == "schema_gen":
                return [("exclude_splits", 1, None, "[]"), ("infer_feature_shape", 1, 1, None)]
            if kind == "transform":
                return [("module_path", 1, None, f"preprocessing@{wheel}"), ("custom_config", 1, None, "null"),
                        ("force_tf_compat_v1", 1, 0, None), ("disable_statistics", 1, 0, None)]
            if kind == "tuner":
                return [("module_path", 1, None, f"tuner_module@{wheel}"),
                        ("train_args", 1, None, _pretty({"num_steps": self.steps[0] // 10})),
                        ("tune_args", 1, None, _pretty({"num_parallel_trials": 3})),
                        ("custom_config", 1, None, json.dumps({"max_trials": 20, "space": self.hparam_version[0]}))]
            if kind == "trainer":
                return [("module_path", 1, None, f"trainer_module@{wheel}"),
                        ("train_args", 1, None, _pretty({"num_steps": self.steps[b]})),
                        ("eval_args", 1, None, _pretty({"num_steps": max(5, self.steps[b] // 20)})),
                        ("custom_config", 1, None, json.dumps(hp, sort_keys=True))]
            if kind == "evaluator":
                return [("eval_config", 1, None, json.dumps({"metrics_specs": [{"metrics": [{
                            "class_name": "AUC", "threshold": {
                                "change_threshold": {"absolute": -0.01, "direction": "HIGHER_IS_BETTER"},
                                "value_threshold": {"lower_bound": 0.6}}}]}],
                            "model_specs": [{"label_key": "label", "signature_name": "serving_default"}],
                            "slicing_specs": [{}]}, sort_keys=True)),
                        ("example_splits", 1, None, "null"), ("fairness_indicator_thresholds", 1, None, "null")]
            if kind == "infra_validator":
                return [("serving_spec", 1, None, json.dumps({"tensorflow_serving": {"tags": ["latest"]},
                                                              "local_docker": {}})),
                        ("validation_spec", 1, None, json.dumps({"max_loading_time_seconds": 60, "num_tries": 3})),
                        ("request_spec", 1, None, json.dumps({"tensorflow_serving": {}, "num_examples": 10}))]
            if kind == "pusher":
                return [("push_destination", 1, None, _pretty({"filesystem": {
                            "base_directory": f"gs://{spec.name}-serving/{node.node_id.lower()}"}})),
                        ("custom_config", 1, None, "null")]
            return []
        # legacy: every execution property is a declared STRING property
        common = [("pipeline_name", 0, None, spec.name), ("pipeline_root", 0, None, self.root),
                  ("component_id", 0, None, node.node_id)]
        values = {
            "input_base": f"gs://{spec.name}-data/ingest", "input_config": "null", "output_config": "null",
            "module_file": f"gs://{spec.name}-code/{code[:12]}/{node.kind}.py",
            "train_args": json.dumps({"num_steps": self.steps[b]}),
            "eval_args": json.dumps({"num_steps": max(5, self.steps[b] // 20)}),
            "custom_config": json.dumps(hp, sort_keys=True), "warm_starting": "False",
            "feature_slicing_spec": json.dumps({"specs": [{}]}),
            "push_destination": json.dumps({"filesystem": {"base_directory": f"gs://{spec.name}-serving"}}),
        }
        return common + [(p, 0, None, values[p]) for p in LEGACY_EXECUTION_PROPS[kind]]

    # ---------------------------------------------------------------- core emitter
    def _key(self, node: _Node, token, inputs) -> tuple:
        """The cache key: configuration, input artifacts, and salts no property records."""
        return (token, tuple(tuple(ids) for _, ids in inputs), self.salt, node.salt)

    def _emit(self, node: _Node, cursor: int, inputs: list[tuple[str, list[int]]], token,
              dur_s: float, outputs: list[tuple[str, str, str, list]] | None, fail: bool = False,
              internal: bool = False, extra_props: tuple = (), hidden=None):
        """Emit one execution of ``node``. Returns (state, outputs dict, end ms, id).

        ``outputs`` lists (logical key, path key, artifact type, extra property rows) for a
        fresh execution; ``None`` output artifacts are reused when the node is cached.
        ``extra_props`` are execution properties of a COMPLETE run beyond the configuration;
        ``hidden`` is configuration that changes the work but is recorded nowhere.
        """
        s, w, r = self.s, self.w, self.w.rows
        self.last_redundant = False
        key = self._key(node, token, inputs) if not internal else None
        cached = key is not None and node.key == key and not self.run_cache_off
        if cached and not self.sync:
            return _SKIPPED, node.outputs, cursor, 0
        comp = s.style.components[node.kind]
        t0 = cursor + int(self.rng.expovariate(1 / 8000.0)) + 20
        if cached:
            state = CACHED
            t1 = t0 + 10 + int(self.rng.expovariate(1 / 60.0))
        else:
            state = FAILED if fail else COMPLETE
            t1 = t0 + max(1, int(dur_s * 1000))
        xid = next(w.execution_ids)
        r.executions.append((xid, s.exec_type[node.kind], None if s.legacy else state,
                             None if s.legacy else self._uuid(), t0, t1))
        # properties (template keyed by node configuration)
        tpl_key = token if node.kind != "example_gen" else self.code_version  # span is not configuration
        tpl = node.templates.get(tpl_key)
        if tpl is None:
            tpl = node.templates[tpl_key] = w.template(self._exec_props(node, token))
        r.templates.append((xid, tpl, 0))
        # contexts
        if self.pipeline_ctx == 0 and self.current:
            self.pipeline_ctx = cid = next(w.context_ids)
            r.contexts.append((cid, s.ctx_type["pipeline"], self.spec.name, t0 - 90, t0 - 90))
        if self.current:
            if node.ctx == 0:
                node.ctx = cid = next(w.context_ids)
                r.contexts.append((cid, s.ctx_type["node"], f"{self.spec.name}.{node.node_id}", t0 - 10, t0 - 10))
            cache = None
            if self.sync and not internal:
                if cached:
                    cache = node.cache_ctx
                else:
                    cache = next(w.context_ids)
                    digest = hashlib.sha256(f"{self.spec.name}|{node.node_id}|{xid}|{key!r}".encode()).hexdigest()
                    r.contexts.append((cache, s.ctx_type["execution_cache"], digest, t0 + 15, t0 + 15))
                    if not fail:
                        node.cache_ctx = cache
            r.associations.append((xid, self.pipeline_ctx, self.run_ctx or None, node.ctx, cache))
        else:
            cid = next(w.context_ids)
            name = f"{self.run_name}.{node.node_id}"
            r.contexts.append((cid, s.ctx_type["component_run"], name, t0 - 5, t0 - 5))
            r.context_props.extend(((cid, "pipeline_name", 0, None, self.spec.name),
                                    (cid, "run_id", 0, None, self.run_id),
                                    (cid, "component_id", 0, None, node.node_id)))
            r.associations.append((xid, self.run_ctx, cid, None, None))
            r.execution_props.extend(((xid, "state", 0, None, _LEGACY_STATE[state]),
                                      (xid, "run_id", 0, None, self.run_id)))
        # input events
        ev = r.events
        event_ids = w.event_ids
        in_paths = comp.in_paths
        if node.kind != "evaluator":  # only the Evaluator can read one artifact under two keys
            for logical, ids in inputs:
                path = in_paths[logical]
                for i, aid in enumerate(ids):
                    ev.append((next(event_ids), aid, xid, INPUT, t0, path, i))
        else:
            steps: dict[int, list[tuple[str, int]]] = {}
            for logical, ids in inputs:
                path = in_paths[logical]
                for i, aid in enumerate(ids):
                    steps.setdefault(aid, []).append((path, i))
            for aid, path_steps in steps.items():
                eid = next(event_ids)
                if len(path_steps) == 1:
                    ev.append((eid, aid, xid, INPUT, t0, path_steps[0][0], path_steps[0][1]))
                else:  # one event per (artifact, execution, type); MLMD concatenates the paths
                    ev.append((eid, aid, xid, INPUT, t0, None, None))
                    for path, i in path_steps:
                        r.event_paths.append((eid, 0, None, path))
                        r.event_paths.append((eid, 1, i, None))
        # outputs
        if cached:
            out = node.outputs
            for logical, ids in out.items():
                path = comp.out(logical)[0]
                for i, aid in enumerate(ids):
                    ev.append((next(w.event_ids), aid, xid, OUTPUT, t1, path, i))
        elif fail or outputs is None:
            out = {}
        else:
            out = {}
            for logical, path, art_type, extra in outputs:
                aid = next(w.artifact_ids)
                uri = f"{self.root}/{node.node_id}/{path}/{xid}"
                r.artifacts.append((aid, s.art_type[art_type], uri, LIVE, None, t1, t1))
                r.templates.append((aid, s.art_template(art_type, self.spec.tfx_version, self.spec.name), 1))
                for name, custom, iv, sv in extra:
                    r.artifact_props.append((aid, name, custom, iv, sv))
                ev.append((next(w.event_ids), aid, xid, OUTPUT, t1, path, 0))
                out[logical] = [aid]
            node.key = key
            node.outputs = out
        if extra_props and state == COMPLETE:
            r.execution_props.extend((xid, *row) for row in extra_props)
        if fail:
            r.execution_props.append((xid, "__execution_result__", 1, None, json.dumps(
                {"code": 13, "result_message": "Trainer failed: user code raised an exception"})))
        if not cached and not internal:
            self._track(node, xid, state, tpl, extra_props, hidden, key[1], out)
        return state, out, t1, xid

    def _track(self, node: _Node, xid: int, state: int, tpl: int, extra_props: tuple, hidden,
               inputs: tuple[tuple[int, ...], ...], out: dict[str, list[int]]) -> None:
        """Ground truth of redundant work: did this execution redo an earlier COMPLETE one?

        Two executions of a node do the same work when their configuration and the *content*
        of their inputs are equal. ``recorded`` says whether the store shows it one level deep:
        the very same input artifacts, or artifacts with equal recorded fingerprints (for
        ExampleGen, its output's fingerprint), and equal execution properties.
        """
        alias = self.alias
        # ``inputs``: the artifact ids per input key, in the node's fixed key order
        content = tuple([tuple([alias.get(a, a) for a in ids]) for ids in inputs]) if alias else inputs
        sig = (tpl, extra_props, hidden, content)
        first = node.done.get(sig)
        rsig = None
        if state == COMPLETE and (inputs or (extra_props and self.current)):
            fpa = self.fp_alias
            rsig = (tpl, extra_props,
                    tuple([tuple([fpa.get(a, a) for a in ids]) for ids in inputs]) if fpa else inputs)
        if first is not None:
            self.last_redundant = True
            s = self.s
            s.redundant.append({
                "execution_id": xid, "pipeline": self.spec.name, "node": node.node_id,
                "component": node.kind, "run": self.run_name if self.run_ctx else None,
                "state": EXECUTION_STATE_NAMES[state], "cause": self.run_cause if self.run_cache_off
                else "cache_key_change", "same_as": first[0], "recorded": rsig is not None and rsig in node.recorded,
            })
            if state == COMPLETE:  # its outputs hold what the first run's outputs hold
                for k, ids in out.items():
                    for aid, orig in zip(ids, first[1][k]):
                        alias[aid] = orig
                        if node.kind == "example_gen" and self.current:
                            self.fp_alias[aid] = orig
        elif state == COMPLETE:
            node.done[sig] = (xid, out)
        if rsig is not None:
            node.recorded.add(rsig)

    # ---------------------------------------------------------------- one run
    def run(self, t_ms: int) -> None:
        if t_ms < self.busy_until:
            self.skipped_runs += 1
            return
        spec, rng, s = self.spec, self.rng, self.s
        days = spec.cadence_h / 24.0
        # changes that happened since the last run
        if rng.random() < 1 - math.exp(-spec.code_per_day * days):
            self.code_version += 1
            self.transform_version += rng.random() < 0.3
            for b in range(spec.n_trainers):
                self.health[b] += rng.gauss(*self.model.code_effect)
                self.code_age[b] = 0
        for b in range(spec.n_trainers):
            if rng.random() < 1 - math.exp(-spec.hparam_per_day * days):
                self.hparam_version[b] += 1
                self.epochs[b] = rng.choice((5, 10, 20, 40))
                self.lr[b] = rng.choice((0.1, 0.03, 0.01, 0.003, 0.001))
                self.health[b] += rng.gauss(*self.model.hparam_effect)
            self.health[b] = self.model.health_phi * self.health[b] + rng.gauss(0.0, self.model.health_sd) * math.sqrt(
                min(1.0, days))
        if self.runs > 1 and rng.random() < 1 - math.exp(-spec.structure_per_day * days):
            self.structure_version += 1
            change = rng.choice(("transform", "infra", "window", "tuner"))
            if change == "transform":
                self.has_transform = not self.has_transform
            elif change == "infra" and self.current:
                self.has_infra = not self.has_infra
            elif change == "tuner" and self.current:
                self.has_tuner = not self.has_tuner
            else:
                self.window = rng.choice([k for k in (1, 2, 3, 5, 7) if k != self.window])
        if spec.cache_bust_per_day and rng.random() < 1 - math.exp(-spec.cache_bust_per_day * days):
            # a cache-key change no property records (platform upgrade, a component's image)
            nodes = [n for n in self.nodes.values() if n.kind != "resolver"]
            if nodes:
                self.cache_key_changes += 1
                if rng.random() < M.P_CACHE_BUST_ALL:
                    self.salt += 1
                else:
                    rng.choice(nodes).salt += 1
        self._execute(t_ms, not spec.caching, "caching_off", manual=False)
        if self.sync:
            p = spec.p_manual_rerun + M.P_RETRY_AFTER_FAILURE * self.run_failed
            if p and rng.random() < p:  # someone re-runs the finished run by hand
                self.manual_reruns += 1
                t2 = self.busy_until + int(rng.uniform(*M.RERUN_DELAY_MIN) * 60_000)
                off = not spec.caching or rng.random() < M.P_RERUN_CACHE_OFF
                self._execute(t2, off, "caching_off" if not spec.caching else "manual_rerun", manual=True)

    def _execute(self, t_ms: int, cache_off: bool, cause: str, manual: bool) -> None:
        """One run of the pipeline as configured now; ``cache_off`` executes every node."""
        spec, rng, s = self.spec, self.rng, self.s
        self.runs += 1
        self.run_cache_off = cache_off
        self.run_cause = cause
        self.run_failed = False
        # the run context
        iso = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        w, r = self.w, self.w.rows
        self.run_ctx = 0
        if self.current:
            if self.sync:
                self.run_name = s.unique_run_name(iso)
                self.run_ctx = cid = next(w.context_ids)
                r.contexts.append((cid, s.ctx_type["pipeline_run"], self.run_name, t_ms, t_ms))
                if self.pipeline_ctx == 0:
                    self.pipeline_ctx = pid = next(w.context_ids)
                    r.contexts.append((pid, s.ctx_type["pipeline"], spec.name, t_ms - 90, t_ms - 90))
                r.parent_contexts.append((cid, self.pipeline_ctx))
        else:
            self.run_id = iso[:19]
            self.run_name = s.unique_run_name(f"{spec.name}.{self.run_id}")
            self.run_ctx = cid = next(w.context_ids)
            r.contexts.append((cid, s.ctx_type["run"], self.run_name, t_ms, t_ms))
            r.context_props.extend(((cid, "pipeline_name", 0, None, spec.name),
                                    (cid, "run_id", 0, None, self.run_id)))
        cursor = t_ms
        # --- data ingestion and validation
        new_data = not self.spans or (not manual and rng.random() < spec.p_new_data)
        if new_data:
            self.span_no += 1
            self.span_fp = f"split:single_split,num_files:{1 + self.span_no % 7}," \
                           f"total_bytes:{rng.randrange(10**6, 10**9)}"
        eg = self._node("example_gen")
        fp = self.span_fp  # re-reading an unchanged span finds the same fingerprint
        span_extra = []
        if self.current:
            span_extra = [("span", 1, self.span_no, None), ("input_fingerprint", 1, None, fp)]
            eg_props = (("span", 1, self.span_no, None), ("input_fingerprint", 1, None, fp))
        else:
            span_extra = [("span", 0, self.span_no, None), ("name", 0, None, "examples")]
            eg_props = ()
        state, out, cursor, xid = self._emit(eg, cursor, [], ("eg", self.span_no), self._duration("example_gen"),
                                             [("examples", *s.style.components["example_gen"].out("examples"),
                                               span_extra)], extra_props=eg_props,
                                             hidden=None if self.current else self.span_no)
        if state == COMPLETE:
            if new_data:
                drift = abs(rng.gauss(0.0, spec.drift_sd))
                self.spans.append((self.span_no, out["examples"][0], False, drift))
                if len(self.spans) > 20:
                    del self.spans[0]
            else:  # the same span read again: downstream consumes the new, content-identical artifact
                span, _, anomaly, drift = self.spans[-1]
                self.spans[-1] = (span, out["examples"][0], anomaly, drift)
        if state == _SKIPPED and not self._pending_training():
            self.cached_runs += 1
            self.busy_until = cursor
            return
        latest = [self.spans[-1][1]]
        comps = s.style.components
        state, out, cursor, _ = self._emit(self._node("statistics_gen"), cursor, [("examples", latest)], "sg",
                                           self._duration("statistics_gen"),
                                           [("statistics", *comps["statistics_gen"].out("statistics"), [])])
        stats = out["statistics"]
        state, out, cursor, _ = self._emit(self._node("schema_gen"), cursor, [("statistics", stats)], "sc",
                                           self._duration("schema_gen"),
                                           [("schema", *comps["schema_gen"].out("schema"), [])])
        schema = out["schema"]
        span, ex_id, _, drift = self.spans[-1]
        ev_node = self._node("example_validator")
        anomaly_now = rng.random() < min(0.95, spec.anomaly_rate + 0.2 * min(drift, 2.0))
        blessed_struct = None
        if self.current:
            blessed_struct = s.struct_ok if not anomaly_now else s.struct_anomalous[rng.randrange(3)]
        if self.validated is not None and self.validated[0] == span:  # same data, same verdict
            anomaly_now, blessed_struct = self.validated[1], self.validated[2]
        if self.current:
            extra = [("blessed", 1, None, blessed_struct)]
        else:
            extra = [("name", 0, None, "output")]
        state, out, cursor, _ = self._emit(ev_node, cursor, [("statistics", stats), ("schema", schema)], "ev",
                                           self._duration("example_validator"),
                                           [("anomalies", *comps["example_validator"].out("anomalies"), extra)])
        if state == COMPLETE:
            self.spans[-1] = (span, ex_id, anomaly_now, drift)
            self.validated = (span, anomaly_now, blessed_struct)
        anomaly = self.spans[-1][2]
        window_ids = [sp[1] for sp in self.spans[-self.window:]]
        # --- transform and tuner
        train_inputs: list[tuple[str, list[int]]]
        if self.has_transform:
            k_factor = len(window_ids) ** 0.6
            state, out, cursor, _ = self._emit(
                self._node("transform"), cursor, [("examples", window_ids), ("schema", schema)],
                ("tf", self.transform_version), self._duration("transform") * k_factor,
                [("transform_graph", *comps["transform"].out("transform_graph"), []),
                 ("transformed_examples", *comps["transform"].out("transformed_examples"), [])])
            train_inputs = [("examples", out["transformed_examples"]), ("schema", schema),
                            ("transform_graph", out["transform_graph"])]
        else:
            train_inputs = [("examples", window_ids), ("schema", schema)]
        if self.has_tuner:
            state, out, cursor, _ = self._emit(
                self._node("tuner"), cursor, list(train_inputs), ("tu", self.code_version, self.hparam_version[0]),
                self._duration("tuner", 0.4),
                [("best_hyperparameters", *comps["tuner"].out("best_hyperparameters"), []),
                 ("tuner_results", *comps["tuner"].out("tuner_results"), [])])
            train_inputs.append(("hyperparameters", out["best_hyperparameters"]))
        # --- one branch per trainer
        end = cursor
        for b in range(spec.n_trainers):
            end = max(end, self._branch(b, cursor, train_inputs, latest, anomaly, new_data))
        self.busy_until = end

    def _pending_training(self) -> bool:
        return any(n.kind == "trainer" and n.key is not None and n.key[0] != self._trainer_token(n.branch)
                   for n in self.nodes.values())

    def _unnamed_drivers(self, b: int, t_ms: int) -> dict:
        """Drivers only a non-default outcome model weighs (none for the default: nothing drawn)."""
        m = self.model
        if m == M.DEFAULT_OUTCOME_MODEL:
            return {}
        hours = t_ms / 3_600_000
        return {"hour": hours % 24.0, "runs_since_code_change": self.code_age[b],
                "cycle": math.sin(2 * math.pi * hours / (24.0 * m.cycle_days) + self.pipe.phase),
                "shock": self.orng.gauss(0.0, m.shock_sd) if m.shock_sd > 0 else 0.0}

    def _trainer_token(self, b: int):
        return ("tr", self.code_version, self.hparam_version[b], self.structure_version)

    def _branch(self, b: int, cursor: int, train_inputs, latest, anomaly: bool, new_data: bool) -> int:
        spec, rng, s = self.spec, self.rng, self.s
        comps = s.style.components
        tr = self._node("trainer", b)
        token = self._trainer_token(b)
        will_run = self.run_cache_off or tr.key != self._key(tr, token, train_inputs)
        fail = False
        gt = None
        outcome = None
        drivers = None
        if will_run:
            prev = tr.key[0] if tr.key is not None else None
            hist = self.history[b]
            drivers = M.Drivers(
                anomaly=anomaly, new_data=new_data,
                code_change=prev is not None and prev[1] != token[1],
                hparam_change=prev is not None and prev[2] != token[2],
                structure_change=prev is not None and prev[3] != token[3],
                recent_bless_rate=(sum(hist) / len(hist)) if hist else 0.6,
                drift=self.spans[-1][3], health=self.health[b], **self._unnamed_drivers(b, cursor))
            self.code_age[b] += 1
            outcome = M.outcome_probabilities(spec, b, drivers, self.has_infra, self.model, self.pipe)
            fail = rng.random() < outcome.p_fail
        n_ex = sum(len(ids) for k, ids in train_inputs if k == "examples")
        dur = self._duration("trainer", 0.45) * (n_ex ** 0.7) * (self.epochs[b] / 10) ** 0.5
        if fail:
            dur *= rng.uniform(0.05, 0.9)
        extra_model = [] if self.current else [("name", 0, None, "output")]
        outs = [("model", *comps["trainer"].out("model"), extra_model)]
        if self.current:
            outs.append(("model_run", *comps["trainer"].out("model_run"), []))
        state, out, cursor, xid = self._emit(tr, cursor, train_inputs, token, dur, outs, fail=fail)
        if state == _SKIPPED:
            return cursor
        if will_run:
            blessed = rng.random() < outcome.p_bless
            infra_ok = rng.random() < outcome.p_infra_ok
            gt = {
                "execution_id": xid, "pipeline": spec.name, "node": tr.node_id,
                "run": self.run_name if self.run_ctx else None,
                "state": EXECUTION_STATE_NAMES[state], "blessed": None, "pushed": False, "pushes": 0,
                "duration_s": round(self.w.rows.executions[-1][5] / 1000 - self.w.rows.executions[-1][4] / 1000, 3),
                "push_probability": round(outcome.push_probability, 6),
                "p_fail": round(outcome.p_fail, 6), "p_bless": round(outcome.p_bless, 6),
                "p_infra_ok": round(outcome.p_infra_ok, 6),
                "drivers": {"anomaly": drivers.anomaly, "new_data": drivers.new_data,
                            "code_change": drivers.code_change, "hparam_change": drivers.hparam_change,
                            "structure_change": drivers.structure_change,
                            "recent_bless_rate": round(drivers.recent_bless_rate, 3),
                            "drift": round(drivers.drift, 4), "health": round(drivers.health, 4),
                            **({} if self.model == M.DEFAULT_OUTCOME_MODEL else {
                                "hour": round(drivers.hour, 3), "runs_since_code_change": drivers.runs_since_code_change,
                                "cycle": round(drivers.cycle, 4), "shock": round(drivers.shock, 4)})},
            }
            gt["redundant"] = self.last_redundant
            s.trainers.append(gt)
            if fail:
                self.run_failed = True
                return cursor
            model_id = out["model"][0]
            self.model_fate[model_id] = (blessed, infra_ok, gt)
            self.model_uri[model_id] = f"{self.root}/{tr.node_id}/{comps['trainer'].out('model')[0]}/{xid}"
            if spec.has_evaluator:
                gt["blessed"] = blessed
                self.history[b].append(1.0 if blessed else 0.0)
        else:
            s.trainers.append({
                "execution_id": xid, "pipeline": spec.name, "node": tr.node_id,
                "run": self.run_name if self.run_ctx else None, "state": "CACHED", "blessed": None,
                "pushed": False, "pushes": 0,
                "duration_s": round((self.w.rows.executions[-1][5] - self.w.rows.executions[-1][4]) / 1000, 3),
                "push_probability": None, "p_fail": None, "p_bless": None, "p_infra_ok": None,
                "drivers": None, "redundant": False})
            if not self.sync:
                return cursor
        model_id = out["model"][0]
        blessed, infra_ok, model_gt = self.model_fate[model_id]
        model_in = [model_id]
        blessing_ids: list[int] = []
        if self.current:
            if spec.has_evaluator:
                res = self._node("resolver", b)
                baseline = self.latest_blessed[b]
                state, _, cursor, rx = self._emit(res, cursor, [], "rs", self._duration("resolver"), None,
                                                  internal=True)
                if baseline is not None:
                    for i, (aid, path) in enumerate(((baseline[0], "model"), (baseline[1], "model_blessing"))):
                        self.w.rows.events.append((next(self.w.event_ids), aid, rx, INTERNAL_OUTPUT,
                                                   cursor, path, 0))
                ev = self._node("evaluator", b)
                extra = [("blessed", 1, int(blessed), None), ("current_model", 1, None, self.model_uri[model_id]),
                         ("current_model_id", 1, model_id, None)]
                if baseline is not None:
                    extra += [("baseline_model", 1, None, baseline[2]), ("baseline_model_id", 1, baseline[0], None)]
                state, out, cursor, _ = self._emit(
                    ev, cursor, [("examples", latest), ("model", model_in),
                                 ("baseline_model", [baseline[0]] if baseline else [])],
                    "evaluator", self._duration("evaluator"),
                    [("evaluation", *comps["evaluator"].out("evaluation"), []),
                     ("blessing", *comps["evaluator"].out("blessing"), extra)])
                blessing_ids = out["blessing"]
                if state == COMPLETE and blessed:
                    self.latest_blessed[b] = (model_id, blessing_ids[0], self.model_uri[model_id])
            infra_ids: list[int] = []
            if self.has_infra:
                state, out, cursor, _ = self._emit(
                    self._node("infra_validator", b), cursor, [("model", model_in), ("examples", latest)], "iv",
                    self._duration("infra_validator"),
                    [("blessing", *comps["infra_validator"].out("blessing"), [("blessed", 1, int(infra_ok), None)])])
                infra_ids = out["blessing"]
            push_inputs = [("model", model_in), ("blessing", blessing_ids)]
            if infra_ids:
                push_inputs.append(("infra_blessing", infra_ids))
        else:
            state, out, cursor, _ = self._emit(
                self._node("evaluator", b), cursor, [("examples", latest), ("model", model_in)], "evaluator",
                self._duration("evaluator"), [("evaluation", *comps["evaluator"].out("evaluation"),
                                               [("name", 0, None, "output")])])
            base = self.latest_blessed[b]
            extra = [("name", 0, None, "blessing"), ("blessed", 1, int(blessed), None),
                     ("current_model", 1, None, self.model_uri[model_id]), ("current_model_id", 1, model_id, None)]
            if base is not None:
                extra += [("blessed_model", 1, None, base[2]), ("blessed_model_id", 1, base[0], None)]
            state, out, cursor, _ = self._emit(
                self._node("model_validator", b), cursor, [("examples", latest), ("model", model_in)],
                ("mv", base[0] if base else 0), self._duration("model_validator"),
                [("blessing", *comps["model_validator"].out("blessing"), extra)],
                hidden=self.alias.get(base[0], base[0]) if base else 0)  # reads its baseline unrecorded
            blessing_ids = out["blessing"]
            if state == COMPLETE and blessed:
                self.latest_blessed[b] = (model_id, blessing_ids[0], self.model_uri[model_id])
            push_inputs = [("model", model_in), ("blessing", blessing_ids)]
            infra_ok = True
        pushed = blessed and infra_ok
        pusher = self._node("pusher", b)
        t_push = cursor
        version = str(t_push // 1000 + 30)
        if self.current:
            extra = [("pushed", 1, int(pushed), None)]
            if pushed:
                extra += [("pushed_destination", 1, None,
                           f"gs://{spec.name}-serving/{pusher.node_id.lower()}/{version}"),
                          ("pushed_version", 1, None, version)]
        else:
            extra = [("name", 0, None, "model_push"), ("pushed", 1, int(pushed), None)]
            if pushed:
                extra += [("pushed_model", 1, None, f"gs://{spec.name}-serving/{version}"),
                          ("pushed_model_id", 1, model_id, None)]
        state, out, cursor, _ = self._emit(pusher, cursor, push_inputs, "pusher", self._duration("pusher"),
                                           [("pushed_model", *comps["pusher"].out("pushed_model"), extra)])
        if state == COMPLETE and pushed:
            model_gt["pushed"] = True
            model_gt["pushes"] += 1
        return cursor

