"""The house's rules that import-linter does not check: no private name crosses a module boundary."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "accesscontrol", "devices", "hotel", "integrations", "simulation", "space")


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``from module import _name`` statements of ``path`` that reach into another module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: from {node.module} import {alias.name}")
    return found


def production_modules() -> list[Path]:
    return sorted(
        path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts
    )


def test_no_production_module_imports_a_private_name_of_another():
    found = [line for path in production_modules() for line in private_imports(path)]

    assert found == []


def test_the_check_finds_a_private_import_and_nothing_else(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from accesscontrol.api.views import _changes\nfrom os import _exit\nfrom devices import __version__\n"
    )

    assert private_imports(probe, root=tmp_path) == ["probe.py:1: from accesscontrol.api.views import _changes"]
