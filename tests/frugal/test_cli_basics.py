"""The command line starts, lists its commands and reports its version."""

from __future__ import annotations

import subprocess
import sys

from frugal import __version__
from frugal.cli import main


def test_version_exit_code_and_text(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"frugal {__version__}"


def test_help_lists_demo_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "frugal", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_demo_refuses_to_replace_a_folder_it_did_not_write(tmp_path, capsys):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "thesis.txt").write_text("precious")
    assert main(["demo", "--out", str(keep), "-q"]) == 2
    assert "was not written by `frugal demo`" in capsys.readouterr().err
    assert (keep / "thesis.txt").read_text() == "precious"


def test_demo_finds_its_tfx_stores_as_package_data():
    from frugal.commands.demo import tfx_example_stores

    stores = tfx_example_stores()
    assert [s.name for s in stores] == ["penguin_minimal.sqlite", "penguin_prod.sqlite"]
    assert all(s.parent.parts[-4:] == ("pipelines", "examples", "data", "tfx") for s in stores)


def test_python_bound_admits_only_versions_with_tomllib():
    import tomllib
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    spec = SpecifierSet(meta["project"]["requires-python"])
    assert "3.11.0" in spec and "3.10.12" not in spec
