"""The README's two commands exist as Makefile targets that do what the README says."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_commands_are_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    targets = dict(re.findall(r"^([a-z][\w.-]*):[^=\n]*\n((?:\t.*\n)+)", makefile, flags=re.M))
    for command in ("demo", "test"):
        assert f"make {command}" in readme
        assert command in targets, f"the README's `make {command}` has no Makefile target"
    assert "frugal demo" in targets["demo"]
    assert "pytest" in targets["test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
