"""A Kubeflow Pipelines v2 pipeline guarded by frugal_gate (run with .venv-kfp's Python).

    python kfp_pipeline.py --url URL [--pipeline NAME] --yaml FILE [--run-local ROOT --marker FILE] --out FILE

Compiles the pipeline with the real kfp compiler into ``--yaml``; with ``--run-local`` it
also runs it with kfp's local SubprocessRunner, where the trainer writes ``--marker`` when
it executes. Writes a JSON report (the gate's output and whether the trainer ran) to ``--out``.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as types.
import argparse
import json
from pathlib import Path

from kfp import compiler, dsl, local

from frugal_client.kfp import frugal_gate


@dsl.component(base_image="python:3.11-slim")
def ingest() -> str:
    return "examples-v1"


@dsl.component(base_image="python:3.11-slim")
def train(examples: str, marker: str) -> str:
    from pathlib import Path

    Path(marker).write_text(examples)
    return "model-of-" + examples


def build(url: str, pipeline_name: str, marker: str):
    @dsl.pipeline(name="penguin-kfp")
    def penguin_kfp():
        data = ingest()
        gate = frugal_gate(pipeline=pipeline_name, url=url, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER).after(data)
        gate.set_caching_options(False)
        with dsl.If(gate.output == "run"):
            train(examples=data.output, marker=marker)

    return penguin_kfp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--pipeline", default="penguin")
    parser.add_argument("--yaml", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--run-local", default=None)
    parser.add_argument("--marker", default="/dev/null")
    args = parser.parse_args()
    pipeline = build(args.url, args.pipeline, args.marker)
    compiler.Compiler().compile(pipeline, args.yaml)
    report = {"compiled": args.yaml}
    if args.run_local:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=args.run_local)
        pipeline()
        report["trained"] = Path(args.marker).exists()
    Path(args.out).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
