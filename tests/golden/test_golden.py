"""Golden in/out pairs: each case's ``out/`` is exactly what the generators make of ``in.yaml``.

A failure means a generator's output changed. If the change is intended, run ``make golden``
and review ``git diff tests/golden``: the diff is the change every user of that config will see.
Adding a case is adding a folder with an ``in.yaml`` (docs/CONTRIBUTING.md, "Golden files").
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

import pytest

from hlthz.alerts import DEFAULT_CONFIG_PATH, check, load_config
from hlthz.dashboards import DashboardSettings, lint_dir
from tests.conftest import need_binary
from tests.golden.cases import (
    ALERTS_DIR,
    DASHBOARDS_DIR,
    GOLDEN_DIR,
    IN_FILE,
    OUT_DIR,
    REPO_ROOT,
    case_dirs,
    read_tree,
    render_case,
)

CASES = [path.name for path in case_dirs()]
#: Lines of unified diff shown for the first differing file; the rest is `git diff`'s job.
_DIFF_LINES = 40


def _shown(case: str, rel: str) -> str:
    return (GOLDEN_DIR / case / OUT_DIR / rel).relative_to(REPO_ROOT).as_posix()


def golden_mismatch(case: str, expected: dict[str, str], actual: dict[str, str]) -> str:
    """Why ``actual`` (the files in ``out/``) is not ``expected`` (generated); ``''`` if it is.

    Lists every differing, missing and extra file, then a short unified diff of the first
    differing one, so the failure names the file and shows what moved.
    """
    changed = [rel for rel in expected if rel in actual and actual[rel] != expected[rel]]
    missing = [rel for rel in expected if rel not in actual]
    extra = sorted(set(actual) - set(expected))
    if not (changed or missing or extra):
        return ""
    lines = [f"golden files differ for case {case}; regenerate with: make golden"]
    lines += [f"  differs: {_shown(case, rel)}" for rel in changed]
    lines += [f"  missing: {_shown(case, rel)} (generated, not in out/)" for rel in missing]
    lines += [f"  extra:   {_shown(case, rel)} (in out/, no longer generated)" for rel in extra]
    if changed:
        first = changed[0]
        diff = list(
            difflib.unified_diff(
                actual[first].splitlines(keepends=True),
                expected[first].splitlines(keepends=True),
                fromfile=f"{_shown(case, first)} (golden)",
                tofile=f"{_shown(case, first)} (generated now)",
                n=2,
            )
        )
        more = len(diff) - _DIFF_LINES
        lines.append("")
        lines += [line.rstrip("\n") for line in diff[:_DIFF_LINES]]
        if more > 0:
            lines.append(f"... {more} more diff lines")
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES)
def test_generated_files_equal_the_golden_files(case: str) -> None:
    case_dir = GOLDEN_DIR / case
    problem = golden_mismatch(case, render_case(case_dir), read_tree(case_dir / OUT_DIR))
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.mark.parametrize("case", CASES)
def test_golden_dashboards_pass_the_dashboard_lint(case: str) -> None:
    config = load_config(GOLDEN_DIR / case / IN_FILE)
    out = GOLDEN_DIR / case / OUT_DIR / DASHBOARDS_DIR
    findings = lint_dir(out, DashboardSettings.from_config(config))
    assert not findings, "\n".join(str(f) for f in findings)


@pytest.mark.slow  # promtool test rules takes 4-10 s a case
@pytest.mark.integration
@pytest.mark.parametrize("case", CASES)
def test_golden_alerts_pass_promtool_and_amtool(case: str) -> None:
    need_binary("promtool")
    need_binary("amtool")
    # hlthz alerts check: promtool check rules, promtool test rules, amtool check-config and
    # HLTHZ's lint, on the golden files themselves.
    report = check(GOLDEN_DIR / case / IN_FILE, GOLDEN_DIR / case / OUT_DIR / ALERTS_DIR)
    assert report.ok, "\n".join(report.lines())


def test_every_case_folder_has_an_in_yaml() -> None:
    # A folder without in.yaml is not discovered, so its out/ would never be checked.
    folders = sorted(
        p.name for p in GOLDEN_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    )
    assert folders, f"no golden cases under {GOLDEN_DIR}"
    assert [name for name in folders if not (GOLDEN_DIR / name / IN_FILE).is_file()] == []
    assert folders == CASES


def test_default_case_is_the_packaged_thresholds_file() -> None:
    # The case named for the defaults spells every key out, so it must follow the packaged file.
    case = load_config(GOLDEN_DIR / "default-thresholds" / IN_FILE)
    assert replace(case, source=DEFAULT_CONFIG_PATH) == load_config(DEFAULT_CONFIG_PATH)


def test_a_mismatch_names_every_file_and_shows_the_first_diff() -> None:
    expected = {"a.yml": "x: 1\ny: 2\n", "b.yml": "b\n", "c.yml": "c\n"}
    actual = {"a.yml": "x: 1\ny: 3\n", "c.yml": "c\n", "old.yml": "old\n"}
    message = golden_mismatch("demo", expected, actual).splitlines()
    out = Path("tests/golden/demo/out")
    assert message[0] == "golden files differ for case demo; regenerate with: make golden"
    assert f"  differs: {out}/a.yml" in message
    assert f"  missing: {out}/b.yml (generated, not in out/)" in message
    assert f"  extra:   {out}/old.yml (in out/, no longer generated)" in message
    assert not any("c.yml" in line for line in message)
    assert "-y: 3" in message and "+y: 2" in message
    assert golden_mismatch("demo", expected, dict(expected)) == ""
