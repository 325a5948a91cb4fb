"""The distribution: its dependencies and extras, the wheel, and a base install of it.

The wheel test builds from a copy of the checkout (its tracked and untracked, not ignored
files), installs the wheel in a fresh venv with its base dependencies only (pip resolves them
from the package index), and runs it from an empty directory so the checkout is not importable.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from hlthz.extras import INCLUDES, MODULES

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BASE = {"prometheus-client", "click", "pyyaml", "jinja2"}
# Folder of the checkout -> where it lands in the wheel (pyproject's package-dir).
LAYOUT = {
    "hlthz": "hlthz",
    "exporter": "hlthz/exporter",
    "demo_api": "hlthz/demo_api",
    "alerts": "hlthz/alerts",
    "dashboards": "hlthz/dashboards",
    "replay": "hlthz/replay",
    "tools": "hlthz/tools",
}


def _name(requirement: str) -> str:
    """``"psycopg[binary]>=3.1,<4"`` -> ``"psycopg"`` (normalized, PEP 503)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _split(extra: str) -> tuple[set[str], set[str]]:
    """(own distributions, included extras) of one extra in pyproject.toml."""
    own, included = set(), set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
        if _name(requirement) == "hlthz":
            included |= set(re.findall(r"\w+", requirement.partition("[")[2]))
        else:
            own.add(_name(requirement))
    return own, included


def test_the_base_install_is_the_exporter_and_the_core_cli() -> None:
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == BASE


def test_hlthz_extras_lists_what_pyproject_installs() -> None:
    """Each extra's own distributions are exactly those providing its modules in hlthz.extras
    (read from the dev venv, which has every extra), and the self-references match INCLUDES."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras) == {*MODULES, *INCLUDES, "bench", "dev"}
    assert "django" not in extras  # no module needs Django; the tests get it from dev
    providers = importlib.metadata.packages_distributions()
    for extra in {*MODULES, *INCLUDES}:
        own, included = _split(extra)
        assert included == set(INCLUDES.get(extra, ())), extra
        provided = {_name(dist) for module in MODULES.get(extra, ()) for dist in providers[module]}
        assert provided == own, extra
    assert "all" in _split("dev")[1]


def _tracked_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listing.stdout.decode().split("\0") if (ROOT / name).is_file()]


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    files = _tracked_files()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    # Built as `pip wheel .` would, without build isolation (setuptools from the dev extra).
    # PYTHONDONTWRITEBYTECODE would make setuptools warn that it skips byte-compiling.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    build = ["wheel", "--no-deps", "--no-build-isolation", "-v", "-w", tmp_path / "dist", src]
    log = _run([sys.executable, "-m", "pip", *build], cwd=tmp_path, env=env)
    warnings = [
        line for line in log.splitlines() if re.search(r"warn|would be ignored|!!", line, re.I)
    ]
    assert warnings == [], "\n".join(warnings)
    (wheel,) = (tmp_path / "dist").glob("hlthz-*.whl")

    # The wheel holds the packages' files (code and data) and its metadata, nothing else.
    expected = set()
    for name in files:
        top, _, rest = name.partition("/")
        if top in LAYOUT and rest:
            expected.add(f"{LAYOUT[top]}/{rest}")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    info = {name for name in names if name.startswith("hlthz-0.1.0.dist-info/")}
    assert names - info == expected
    for must in ("hlthz/alerts/templates/runbook.md.j2", "hlthz/replay/templates/report.html.j2"):
        assert must in names
    assert not [n for n in names if re.search(r"(^|/)(tests?|\.venv|__pycache__)/|\.pyc$", n)
                and not n.startswith("hlthz/alerts/generated/tests/")]  # fmt: skip
    return wheel


@pytest.mark.slow
def test_the_base_wheel_installs_lean_and_names_the_extra_a_command_needs(
    tmp_path: Path,
) -> None:
    wheel = _build_wheel(tmp_path)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python, hlthz = venv / "bin" / "python", venv / "bin" / "hlthz"
    pip = [sys.executable, "-m", "pip", "--python", python]
    _run([*pip, "install", "--quiet", "--root-user-action=ignore", wheel], cwd=tmp_path)
    installed = _run([*pip, "list", "--format=freeze"], cwd=tmp_path)
    names = {_name(line) for line in installed.splitlines() if "==" in line}
    assert names == {"hlthz", *BASE, "markupsafe"}  # Jinja2 brings MarkupSafe

    work = tmp_path / "work"  # an empty cwd: only the installed wheel is importable
    work.mkdir()
    code = "from hlthz.exporter import instrument; import hlthz; print(hlthz.__file__)"
    where = _run([python, "-c", code], cwd=work)
    assert Path(where.strip()).is_relative_to(venv)
    found = _run(
        [python, "-c", "import importlib.util as u; "
         "print([m for m in ('locust', 'fastapi', 'grafanalib') if u.find_spec(m)])"],
        cwd=work,
    )  # fmt: skip
    assert found.strip() == "[]"
    assert "replay" in _run([hlthz, "--help"], cwd=work)
    _run([hlthz, "alerts", "generate", "--out", work / "alerts"], cwd=work)  # packaged templates
    assert (work / "alerts" / "runbooks" / "APIHighLatencyP95.md").is_file()
    # An app records its own traffic on the base install; captures import and inspect too.
    _run([python, "-c", "from hlthz.replay import recording"], cwd=work)
    har = Path(__file__).parent / "fixtures" / "capture" / "mitmproxy.har"
    _run([hlthz, "replay", "import", har, "-o", work / "c.jsonl"], cwd=work)
    assert "records    7" in _run([hlthz, "replay", "inspect", work / "c.jsonl"], cwd=work)

    for argv, extra, module in [
        (["replay", "run", "x", "--target", "http://127.0.0.1:9"], "replay", "locust"),
        (["dashboards", "generate"], "dashboards", "grafanalib"),
    ]:
        proc = subprocess.run(
            [hlthz, *argv], cwd=work, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr == (
            f"hlthz: error: hlthz {' '.join(argv[:2])} needs the '{extra}' extra: "
            f"pip install 'hlthz[{extra}]' (missing module: {module})\n"
        )
