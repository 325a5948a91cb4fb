"""The import rules of docs/architecture.md, checked on the source (every import statement,
module level or inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Source folder -> the package it installs as (pyproject's package-dir).
FOLDERS = {
    "hlthz": "hlthz",
    "exporter": "hlthz.exporter",
    "alerts": "hlthz.alerts",
    "dashboards": "hlthz.dashboards",
    "demo_api": "hlthz.demo_api",
    "replay": "hlthz.replay",
    "tools": "hlthz.tools",
}
PARTS = ("exporter", "alerts", "dashboards", "demo_api", "replay", "tools")


def _modules() -> dict[str, list[str]]:
    """``{module: [every hlthz module or name it imports]}`` for our source files."""
    found: dict[str, list[str]] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            module = ".".join([package, *parts])
            imported: list[str] = []
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found[module] = imported
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PARTS else "hlthz"


def test_the_root_package_imports_no_part() -> None:
    bad = [
        f"{module} imports {name}"
        for module, names in _modules().items()
        if _part(module) == "hlthz" and module != "hlthz.__main__"  # `python -m hlthz` is the CLI
        for name in names
        if name.startswith("hlthz.") and _part(name) != "hlthz"
    ]
    assert bad == []


def test_no_part_imports_the_tools_and_capture_never_imports_replay() -> None:
    bad = []
    for module, names in _modules().items():
        for name in names:
            if _part(name) == "tools" and _part(module) != "tools" and module != "hlthz.__main__":
                bad.append(f"{module} imports {name}")
            capture = module.startswith("hlthz.replay.capture")
            if (
                capture
                and name.startswith("hlthz.replay.")
                and not name.startswith("hlthz.replay.capture")
            ):
                bad.append(f"{module} imports {name}")
    assert bad == []


def test_no_private_module_or_name_is_imported_across_parts() -> None:
    bad = []
    for module, names in _modules().items():
        for name in names:
            if not name.startswith("hlthz.") or _part(name) == _part(module):
                continue
            private = [p for p in name.split(".") if p.startswith("_") and not p.endswith("__")]
            if private:
                bad.append(f"{module} imports {name}")
    assert bad == []


def test_our_code_is_imported_plainly() -> None:
    # importlib may look for third-party modules (hlthz.extras), never load our own by name.
    users = [
        module
        for module, names in _modules().items()
        if any(name.split(".")[0] == "importlib" for name in names)
    ]
    assert users == ["hlthz.extras"]
