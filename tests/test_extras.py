"""Optional extras: the one check (``hlthz.extras.require``) and the CLI on a base install.

A base install is simulated in a subprocess by blocking every module an extra brings
(``sys.modules[name] = None`` makes ``import name`` fail); tests/test_packaging.py does the
same for real, on the built wheel in a fresh venv.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hlthz.errors import MissingDependency, MissingExtra, UsageError
from hlthz.extras import INCLUDES, MODULES, extra_of, missing, modules_of, require

# MarkupSafe is listed by the 'replay' extra (hlthz.replay.html_report imports it) but Jinja2,
# a base dependency, brings it too: a base install has it.
BASE_HAS = {"markupsafe"}
BLOCKED = sorted(set(modules_of("all")) - BASE_HAS)
HAR = Path(__file__).parent / "fixtures" / "capture" / "mitmproxy.har"


def test_require_names_the_extra_the_command_and_the_first_missing_module() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("replay", "click", "hlthz_no_such_module", "yaml", what="hlthz replay run")
    error = caught.value
    assert str(error) == (
        "hlthz replay run needs the 'replay' extra: pip install 'hlthz[replay]' "
        "(missing module: hlthz_no_such_module)"
    )
    # One error, two families: exit 2 in the CLI, and `except ImportError` around an import.
    assert isinstance(error, MissingDependency) and isinstance(error, UsageError)
    assert isinstance(error, ModuleNotFoundError) and error.name == "hlthz_no_such_module"
    assert error.exit_code == 2 and error.extra == "replay"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.name == error.name


def test_require_passes_when_the_modules_are_installed() -> None:
    require("replay", "click", "yaml", what="x")  # base modules: installed here
    require("all", what="x")  # the dev venv has every extra
    assert missing("click", "hlthz_no_such_module", "json") == ["hlthz_no_such_module"]


def test_modules_of_follows_included_extras() -> None:
    demo = modules_of("demo")
    assert demo[: len(MODULES["demo"])] == MODULES["demo"]  # its own first
    assert {"locust", "grafanalib", "fastapi"} <= set(demo)
    assert len(demo) == len(set(demo))
    assert set(modules_of("all")) == {name for names in MODULES.values() for name in names}
    assert set(INCLUDES["all"]) == set(MODULES)
    with pytest.raises(ValueError, match="unknown extra 'djangoo'"):
        modules_of("djangoo")


def test_extra_of_maps_a_module_to_the_extra_that_brings_it() -> None:
    assert extra_of("locust.env") == "replay"
    assert extra_of("grafanalib") == "dashboards"
    assert extra_of("psycopg") == "postgres"
    assert extra_of("yaml") is None


# Runs in a subprocess where the extras' modules cannot be imported; prints JSON results.
_BASE_INSTALL = """
import json, sys
for name in {blocked!r}:
    sys.modules[name] = None
from click.testing import CliRunner
from hlthz.tools.cli import main

results = {{}}
for args in {commands!r}:
    result = CliRunner().invoke(main, args, prog_name="hlthz")
    results[" ".join(args)] = [result.exit_code, result.output, repr(result.exception)]
imports = {{}}
for statement in {imports!r}:
    try:
        exec(statement, {{}})
        imports[statement] = "ok"
    except ImportError as exc:
        imports[statement] = type(exc).__name__ + ": " + str(exc)
print(json.dumps({{"commands": results, "imports": imports}}))
"""


def _base_install(
    cwd: Path, commands: list[list[str]], imports: list[str]
) -> dict[str, dict[str, object]]:
    code = _BASE_INSTALL.format(blocked=BLOCKED, commands=commands, imports=imports)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, dict[str, object]] = json.loads(proc.stdout.splitlines()[-1])
    return result


HELP = [
    ["--help"],
    *[
        [group, "--help"]
        for group in ("alerts", "api", "dashboards", "demo", "diagnose", "init", "replay", "stack")
    ],
    *[["api", name, "--help"] for name in ("serve", "seed", "worker")],
    *[["dashboards", name, "--help"] for name in ("generate", "check")],
    *[["replay", name, "--help"] for name in ("record", "import", "run", "compare", "worker")],
    ["stack", "up", "--help"],
]

NEEDS = {
    "replay run x --target http://127.0.0.1:9": ("hlthz replay run", "replay", "locust"),
    "replay record --upstream http://127.0.0.1:9 -o c.jsonl": (
        "hlthz replay record",
        "replay",
        "locust",
    ),
    "replay compare a.json b.json": ("hlthz replay compare", "replay", "locust"),
    "replay worker --master 127.0.0.1:9": ("hlthz replay worker", "replay", "locust"),
    "dashboards generate": ("hlthz dashboards generate", "dashboards", "grafanalib"),
    "dashboards check": ("hlthz dashboards check", "dashboards", "grafanalib"),
    "api serve": ("hlthz api serve", "demo", "fastapi"),
    "api seed --small": ("hlthz api seed", "demo", "fastapi"),
    "demo --quick": ("hlthz demo", "demo", "fastapi"),
    "stack up": ("hlthz stack up (without --target)", "demo", "fastapi"),
}


def test_a_base_install_shows_every_help_and_names_the_extra_a_command_needs(
    tmp_path: Path,
) -> None:
    alerts_out = str(tmp_path / "alerts")
    diagnose = ["diagnose", "--prometheus", "http://127.0.0.1:9", "--window", "1m"]
    commands = [
        *HELP,
        *(line.split() for line in NEEDS),
        diagnose,
        ["alerts", "generate", "--out", alerts_out],
        ["replay", "import", str(HAR), "-o", str(tmp_path / "c.jsonl")],
        ["replay", "inspect", str(tmp_path / "c.jsonl")],
    ]
    results = _base_install(tmp_path, commands, [])["commands"]

    for args in HELP:
        code, output, exception = results[" ".join(args)]  # type: ignore[misc]
        assert code == 0, (args, output, exception)
        assert "Usage: hlthz" in str(output)

    for line, (what, extra, module) in NEEDS.items():
        code, output, _ = results[line]  # type: ignore[misc]
        assert code == 2, (line, output)
        assert output == (
            f"hlthz: error: {what} needs the '{extra}' extra: pip install 'hlthz[{extra}]' "
            f"(missing module: {module})\n"
        )

    # hlthz diagnose needs no extra: it gets as far as trying to reach Prometheus.
    code, output, _ = results[" ".join(diagnose)]  # type: ignore[misc]
    assert code == 2 and str(output).startswith("hlthz: error: cannot reach Prometheus"), output

    code, output, _ = results[" ".join(commands[-3])]  # type: ignore[misc]
    assert code == 0, output  # the core CLI needs no extra
    assert (tmp_path / "alerts" / "generated" / "hlthz.rules.yml").is_file()
    # The capture half needs no extra either: a HAR made by mitmproxy imports and inspects.
    code, output, _ = results[" ".join(commands[-2])]  # type: ignore[misc]
    assert code == 0 and "imported 7 requests" in str(output), output
    code, output, _ = results[" ".join(commands[-1])]  # type: ignore[misc]
    assert code == 0 and "records    7" in str(output), output


def test_a_base_install_names_the_extra_a_package_import_needs(tmp_path: Path) -> None:
    imports = _base_install(
        tmp_path,
        [],
        [
            "from hlthz.exporter import instrument",
            "import hlthz.alerts",
            "from hlthz.demo_api import Settings, OPTIMIZATIONS",
            "from hlthz.tools.stack.config import grafana_provisioning_dir as d; d()",
            "import hlthz.dashboards",
            "from hlthz.replay import recording",
            "from hlthz.replay import run_replay",
            "from hlthz.demo_api import create_app",
        ],
    )["imports"]
    assert list(imports.values())[:4] == ["ok"] * 4
    hint = "MissingExtra: {} needs the '{}' extra: pip install 'hlthz[{}]' (missing module: {})"
    assert imports["import hlthz.dashboards"] == hint.format(
        "hlthz.dashboards", "dashboards", "dashboards", "grafanalib"
    )
    # The capture half is base-install only; the replay half names its extra on first use.
    assert imports["from hlthz.replay import recording"] == "ok"
    assert imports["from hlthz.replay import run_replay"] == hint.format(
        "hlthz.replay.run_replay", "replay", "replay", "locust"
    )
    assert imports["from hlthz.demo_api import create_app"] == hint.format(
        "hlthz.demo_api.create_app", "demo", "demo", "fastapi"
    )


def test_a_command_that_forgot_require_still_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from hlthz.tools.cli import main

    def generate_needing_locust(config: object, out: object) -> list[Path]:
        raise ModuleNotFoundError("No module named 'locust'", name="locust")

    monkeypatch.setattr("hlthz.alerts.generator.generate", generate_needing_locust)
    generate = ["alerts", "generate", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, generate)
    assert result.exit_code == 2
    assert result.output == (
        "hlthz: error: hlthz alerts needs the 'replay' extra: pip install 'hlthz[replay]' "
        "(missing module: locust)\n"
    )

    # A module no extra brings is a bug, not a missing extra: it is not disguised as one.
    def generate_needing_nothing_known(config: object, out: object) -> list[Path]:
        raise ModuleNotFoundError("No module named 'nope'", name="nope")

    monkeypatch.setattr("hlthz.alerts.generator.generate", generate_needing_nothing_known)
    result = CliRunner().invoke(main, generate)
    assert isinstance(result.exception, ModuleNotFoundError)


def test_the_root_help_and_the_core_cli_import_no_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from hlthz.exporter import instrument\n"
        "from hlthz.tools.cli import main\n"
        "for args in (['--help'], ['alerts', '--help'], ['replay', '--help'], ['stack', '--help'],"
        " ['dashboards', '--help'], ['demo', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0, args\n"
        f"print(sorted(m for m in {BLOCKED!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
