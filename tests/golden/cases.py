"""Golden cases: ``tests/golden/<case>/in.yaml`` and every file generated from it in ``out/``.

A case is a directory holding a thresholds file, ``in.yaml``. ``out/alerts/`` holds what
``hlthz alerts generate`` writes for it (the paths of :func:`hlthz.alerts.render_all`) and
``out/dashboards/`` what ``hlthz dashboards generate`` writes (those of
:func:`hlthz.dashboards.expected_files`). :func:`render_case` is the one rendering both the test
(``test_golden.py``) and the regeneration script (``regenerate.py``) use.
"""

from __future__ import annotations

from pathlib import Path

from hlthz.alerts import load_config, render_all
from hlthz.dashboards import DashboardSettings, expected_files

GOLDEN_DIR = Path(__file__).resolve().parent
REPO_ROOT = GOLDEN_DIR.parents[1]
IN_FILE = "in.yaml"
OUT_DIR = "out"
ALERTS_DIR = "alerts"
DASHBOARDS_DIR = "dashboards"


def case_dirs() -> list[Path]:
    """Every case directory (one holding an ``in.yaml``), sorted by name."""
    return sorted(path.parent for path in GOLDEN_DIR.glob(f"*/{IN_FILE}"))


def render_case(case_dir: Path) -> dict[str, str]:
    """``{path relative to out/: text}`` of every file generated from ``case_dir/in.yaml``."""
    config = load_config(case_dir / IN_FILE)
    files = {f"{ALERTS_DIR}/{rel}": text for rel, text in render_all(config).items()}
    dashboards = expected_files(DashboardSettings.from_config(config))
    files.update({f"{DASHBOARDS_DIR}/{rel}": text for rel, text in dashboards.items()})
    return dict(sorted(files.items()))


def read_tree(root: Path) -> dict[str, str]:
    """``{path relative to root: text}`` of every file under ``root`` (empty when it is absent).

    Bytes are decoded as they are, without newline translation, so a CRLF checkout or a stray
    carriage return counts as a difference; undecodable bytes do too instead of raising.
    """
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes().decode("utf-8", errors="replace")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
