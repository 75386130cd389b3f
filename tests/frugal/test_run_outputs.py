"""`frugal run` writes beside the MLMD store (or into --artifacts), never into the working directory.

The penguin example runs for real in a fresh process whose working directory is an empty
folder; afterwards that folder is still empty and the store, the artifact folder and the
example's data lie where docs/cli.md says: beside the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from frugal.cli import main
from frugal.commands.run import RUN_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
PENGUIN_PIPELINE = ROOT / "pipelines" / "examples" / "penguin_pipeline.py"

# a small pipeline file that keeps its input where `frugal run` says: $FRUGAL_RUN_DIR
TINY = (ROOT / "tests" / "data" / "pipelines" / "tiny.py").read_text()


def _tiny(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_pipeline.py"
    path.write_text(TINY)
    return path


def test_penguin_run_writes_beside_the_store_and_nothing_into_the_cwd(tmp_path):
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop(RUN_DIR_ENV, None)
    proc = subprocess.run([sys.executable, "-m", "frugal", "run", str(PENGUIN_PIPELINE),
                           "--store", str(out / "runs.sqlite"), "--json"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert sorted(p.name for p in cwd.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["penguin-data", "runs-artifacts", "runs.sqlite"]
    assert result["artifacts"] == str(out / "runs-artifacts")
    assert result["mlmd_store"] == str(out / "runs.sqlite")
    assert any((out / "runs-artifacts" / "objects").iterdir())
    assert (out / "penguin-data" / "span-1.csv").stat().st_size > 0
    assert result["outputs"]["push"]["pushed"] in (True, False)


def test_run_without_store_or_artifacts_is_refused_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(PENGUIN_PIPELINE)]) == 2
    err = capsys.readouterr().err
    assert "--store" in err and "--artifacts" in err and "working directory" in err
    assert list(tmp_path.iterdir()) == []


def test_artifacts_folder_holds_the_store_and_the_pipelines_files(tmp_path, monkeypatch, capsys):
    pipeline_file = _tiny(tmp_path / "code")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    assert main(["run", str(pipeline_file), "--artifacts", "art"]) == 0
    text = capsys.readouterr().out
    assert f"recorded into MLMD store {Path('art') / 'mlmd.sqlite'}" in text
    assert sorted(p.name for p in cwd.iterdir()) == ["art"]      # the folder asked for, nothing else
    assert {"mlmd.sqlite", "objects", "rows.csv"} <= {p.name for p in (cwd / "art").iterdir()}
    assert RUN_DIR_ENV not in os.environ


def test_no_reuse_without_a_store_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    pipeline_file = _tiny(tmp_path / "code")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv(RUN_DIR_ENV, "/somewhere/else")
    assert main(["run", str(pipeline_file), "--no-reuse"]) == 0
    assert 'output push: {"pushed": true}' in capsys.readouterr().out
    assert list(cwd.iterdir()) == []          # the data went to a temporary folder, since removed
    assert os.environ[RUN_DIR_ENV] == "/somewhere/else"   # restored after the run
