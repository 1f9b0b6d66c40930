"""The README stays true to the code: its asset graph is the Definitions', its links resolve
inside the repository, and its test command is the one CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"


def test_readme_asset_graph_is_the_one_the_definitions_draw():
    done = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "asset_graph.py"), "--check"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_links_resolve_inside_the_repository_and_name_the_ci_command():
    text = README.read_text()
    for doc in [README, *sorted((PROJECT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if target.startswith(("http://", "https://", "data:")):
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.exists(), f"{doc.relative_to(PROJECT)} links to missing {target}"
            assert PROJECT in resolved.parents or resolved == PROJECT, target
    assert "bash scripts/test.sh" in text
    assert "bash scripts/test.sh" in (PROJECT / ".ci" / "run").read_text()
