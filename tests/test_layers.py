"""Every import points down: recommender (the library) < contract (bot-worker wire) < worker, bot < wanderlens."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# What each package may import from this project (itself always); the layers of the README's architecture.
ALLOWED = {
    "recommender": set(),
    "contract": set(),
    "opendata": set(),
    "playground": set(),
    "worker": {"contract", "recommender"},
    "bot": {"contract", "recommender"},
    "wanderlens": {"bot", "contract", "opendata", "playground", "recommender", "worker"},
}


def project_imports(path: Path) -> set[str]:
    """The top-level project packages a module imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & (set(ALLOWED) | {"tests", "bench"})


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_only(package: str) -> None:
    wrong = {
        str(path.relative_to(REPO)): sorted(imported - ALLOWED[package] - {package})
        for path in (REPO / package).rglob("*.py")
        if (imported := project_imports(path)) - ALLOWED[package] - {package}
    }
    assert not wrong, f"imports against the layering: {wrong}"


def test_no_loose_dicts_cross_the_bot_worker_boundary() -> None:
    source = (REPO / "contract" / "messages.py").read_text()
    assert "dict[str, Any]" not in source and "Any" not in source
