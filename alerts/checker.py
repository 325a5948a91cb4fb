"""``hlthz alerts check``: prove the generated alerting files are valid, tested and current.

Runs, in order: the drift check (files equal what ``generate`` writes for the config),
``promtool check rules``, ``promtool test rules`` (the generated unit tests),
``amtool check-config`` and HLTHZ's lint (:mod:`hlthz.alerts.lint`). Every step runs even when
an earlier one fails, so one run lists every problem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hlthz.alerts.config import AlertsConfig, load_config
from hlthz.alerts.generator import (
    ALERTMANAGER_FILE,
    RULES_FILE,
    RUNBOOKS_DIR,
    TESTS_DIR,
    drift,
    output_root,
)
from hlthz.alerts.lint import lint_rules
from hlthz.alerts.routing import ENV_REFERENCE, environment_references
from hlthz.checks import CheckReport, Step
from hlthz.errors import AlertsCheckFailed, MissingDependency

_PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}
#: promtool test rules processes run at once (at most one a core).
_MAX_PROMTOOLS = 4
#: promtool test rules on the default config takes a few seconds; a hung tool must not hang CI.
_TIMEOUT_S = 300


def find_tool(name: str) -> str:
    """Path of ``promtool``/``amtool``; :class:`MissingDependency` names the package to install."""
    found = shutil.which(name)
    if found is None:
        raise MissingDependency(
            f"{name} not found on PATH; install it (Debian/Ubuntu: apt-get install "
            f"{_PACKAGES[name]}; or download Prometheus/Alertmanager release binaries)"
        )
    return found


def _run(argv: list[str], cwd: Path) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"{Path(argv[0]).name} did not finish within {_TIMEOUT_S} s"
    return done.returncode, (done.stdout + done.stderr).strip()


def check(
    config: AlertsConfig | str | Path | None = None, directory: str | Path | None = None
) -> CheckReport:
    """Check the files under ``directory`` (default: ``alerts/`` beside the project file; the
    package's own for the packaged thresholds file) against ``config``.

    Raises :class:`MissingDependency` (exit 2) when promtool or amtool is not installed; otherwise
    returns the report, whose ``ok`` is false when anything failed (``raise_for_failures()``
    raises :class:`~hlthz.errors.AlertsCheckFailed`).
    """
    cfg = config if isinstance(config, AlertsConfig) else load_config(config)
    root = output_root(cfg, directory).resolve()
    promtool, amtool = find_tool("promtool"), find_tool("amtool")
    rules = root / RULES_FILE
    tests = sorted((root / TESTS_DIR).glob("*.yml"))
    steps = []

    step = Step("generated files match the thresholds file")
    step.findings = [
        f"{rel} differs from what {cfg.source.name} generates; run `hlthz alerts generate` "
        "to regenerate"
        for rel in drift(cfg, root)
    ]
    steps.append(step)

    step = Step("promtool check rules")
    if not rules.is_file():
        step.findings.append(f"{rules} is missing; run `hlthz alerts generate`")
    else:
        code, output = _run([promtool, "check", "rules", str(rules)], root)
        if code != 0:
            step.findings.append(output)
    steps.append(step)

    step = Step("promtool test rules")
    if not tests:
        step.findings.append(f"no tests in {root / TESTS_DIR}; run `hlthz alerts generate`")
    elif rules.is_file():
        # promtool runs its test files one after another on one core: split them over the
        # machine's cores (round-robin, so each process gets a like share).
        names = [str(t.relative_to(root)) for t in tests]
        jobs = max(1, min(len(names), os.cpu_count() or 1, _MAX_PROMTOOLS))
        with ThreadPoolExecutor(jobs) as pool:
            runs = list(
                pool.map(
                    lambda chunk: _run([promtool, "test", "rules", *chunk], root),
                    [names[i::jobs] for i in range(jobs)],
                )
            )
        step.findings.extend(_failures_only(output) for code, output in runs if code != 0)
    steps.append(step)

    step = Step("amtool check-config")
    alertmanager = root / ALERTMANAGER_FILE
    if not alertmanager.is_file():
        step.findings.append(f"{alertmanager} is missing; run `hlthz alerts generate`")
    else:
        step.findings = _amtool(amtool, alertmanager, root)
    steps.append(step)

    step = Step("hlthz lint")
    if rules.is_file():
        step.findings = lint_rules(
            rules, cfg, runbooks_dir=root / RUNBOOKS_DIR, tests_dir=root / TESTS_DIR
        )
    steps.append(step)
    return CheckReport("alerts check", steps, AlertsCheckFailed)


def _amtool(amtool: str, path: Path, root: Path) -> list[str]:
    """``amtool check-config`` on ``path``; its ``${ENV}`` references expanded first.

    The generated file keeps ``${NAME}`` as written (secrets stay out of it); amtool needs real
    values, so they are put into a 0600 copy that is removed afterwards, and scrubbed from
    anything amtool prints.
    """
    text = path.read_text(encoding="utf-8")
    names = environment_references(text)
    unset = [name for name in names if not os.environ.get(name)]
    if unset:
        return [
            f"{path.name}: ${{{name}}} is not set in the environment; set it (or use a *_file "
            "field) so that amtool can check the receiver using it"
            for name in unset
        ]
    if not names:
        code, output = _run([amtool, "check-config", str(path)], root)
        return [] if code == 0 else [output]
    secrets = [os.environ[name] for name in names]
    expanded = ENV_REFERENCE.sub(lambda m: os.environ[m.group(1)], text)
    fd, tmp = tempfile.mkstemp(prefix=".alertmanager.", suffix=".yml", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(expanded)
        code, output = _run([amtool, "check-config", tmp], root)
    finally:
        os.unlink(tmp)
    for secret in sorted(secrets, key=len, reverse=True):
        output = output.replace(secret, "<secret>")
    return [] if code == 0 else [output.replace(tmp, str(path))]


def _failures_only(output: str) -> str:
    # promtool prints a SUCCESS block per passing file; keep the failing ones.
    blocks = output.split("Unit Testing:")
    failed = [b.strip() for b in blocks if "FAILED" in b]
    return "\n".join(f"Unit Testing: {b}" for b in failed) or output
