"""Build the four dashboards and write them in their two forms.

- ``<out>/<uid>.json``: for *Dashboards > New > Import* in the Grafana UI. It declares the
  ``DS_PROMETHEUS`` input, so Grafana asks which Prometheus to use and makes it the default of
  the ``datasource`` variable.
- ``<out>/provisioning/<uid>.json`` plus ``<out>/provisioning/hlthz-dashboards.yaml``: for file
  provisioning. No inputs (provisioning cannot answer them); the ``datasource`` variable starts
  on the default Prometheus datasource.

The JSON is written with sorted keys, so regenerating from the same config gives the same
bytes and the committed files can be checked for drift.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from grafanalib.core import Dashboard

from hlthz.alerts import Project, output_dir
from hlthz.dashboards import api, cache_jobs, database, release
from hlthz.dashboards.common import iter_panels, to_json
from hlthz.dashboards.panels import DATASOURCE_VARIABLE
from hlthz.dashboards.settings import DashboardSettings, load_settings
from hlthz.errors import DashboardError
from hlthz.files import atomic_write
from hlthz.inputs import excerpt

# The committed files: dashboards/generated in a checkout (where `hlthz stack` looks too).
DEFAULT_OUT = Path(__file__).resolve().parent / "generated"
PROVISIONING_DIR = "provisioning"
PROVIDER_FILE = "hlthz-dashboards.yaml"
# Where the provider tells Grafana to look; mount <out>/provisioning there.
DEFAULT_PROVISIONING_PATH = "/var/lib/grafana/dashboards/hlthz"
IMPORT_INPUT = "DS_PROMETHEUS"
GRAFANA_MIN_VERSION = "10.3.0"

BUILDERS: dict[str, Callable[[DashboardSettings], Dashboard]] = {
    api.UID: api.build,
    database.UID: database.build,
    cache_jobs.UID: cache_jobs.build,
    release.UID: release.build,
}
UIDS = tuple(BUILDERS)


def build_dashboards(settings: DashboardSettings | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard's provisioning JSON, by UID, for ``settings`` (default thresholds).

    The default scope gets the four dashboards, each service its own API, database and
    cache/jobs dashboards (``hlthz-api-shop``...); the database dashboard only where the app
    has a database or pool signal.
    """
    settings = settings or DashboardSettings()
    boards: dict[str, dict[str, Any]] = {}
    for scope in (settings, *settings.services):
        for base, build in BUILDERS.items():
            if base == release.UID and scope.service:
                continue
            if base == database.UID and not database.wanted(scope):
                continue
            board = to_json(build(scope))
            _min_step(board, scope.scrape_interval)
            boards[board["uid"]] = board
    return boards


def _min_step(board: dict[str, Any], scrape_interval: str) -> None:
    # Grafana's $__rate_interval is max($__interval + min step, 4 x min step): with the min
    # step at the scrape interval of the project file, every rate covers four scrapes even
    # when the datasource does not say how often Prometheus scrapes.
    for panel in iter_panels(board):
        for target in panel.get("targets", []):
            target["interval"] = scrape_interval


def for_import(board: dict[str, Any]) -> dict[str, Any]:
    """The UI-import form of a provisioning dashboard: ``__inputs``, ``__requires``, no id."""
    data = copy.deepcopy(board)
    data["__inputs"] = [
        {
            "name": IMPORT_INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes the instrumented services",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    panel_types = sorted({p["type"] for p in iter_panels(data) if p["type"] != "row"})
    data["__requires"] = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_MIN_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        *({"type": "panel", "id": t, "name": t, "version": ""} for t in panel_types),
    ]
    data["__elements"] = {}
    data["id"] = None
    for variable in data["templating"]["list"]:
        if variable["name"] == DATASOURCE_VARIABLE:
            # Grafana replaces ${DS_PROMETHEUS} with the datasource picked at import.
            ref = "${" + IMPORT_INPUT + "}"
            variable["current"] = {"selected": False, "text": ref, "value": ref}
    return data


def provider_yaml(path: str = DEFAULT_PROVISIONING_PATH) -> str:
    """The dashboard provider file that loads the provisioning JSON from ``path``.

    ``path`` must be an absolute path without control characters (:class:`DashboardError`
    otherwise): it is written into a YAML comment and value that Grafana reads.
    """
    if (
        not path.startswith("/")
        or len(path) > 4096
        or any(ord(c) < 32 or ord(c) == 127 for c in path)
    ):
        raise DashboardError(
            f"--provisioning-path {excerpt(path)}: must be an absolute directory path on the "
            "Grafana host, without line breaks or control characters"
        )
    provider = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "hlthz",
                "orgId": 1,
                "folder": "HLTHZ",
                "folderUid": "hlthz",
                "type": "file",
                "disableDeletion": False,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": path, "foldersFromFilesStructure": False},
            }
        ],
    }
    header = (
        "# Generated by `hlthz dashboards generate`: Grafana dashboard provisioning.\n"
        "# Copy to /etc/grafana/provisioning/dashboards/ and mount the *.json beside this\n"
        f"# file at {path}.\n"
    )
    return header + yaml.safe_dump(provider, sort_keys=False)


def render(board: dict[str, Any]) -> str:
    """The bytes written for ``board``: sorted keys, two-space indent, final newline."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files(
    settings: DashboardSettings, *, provisioning_path: str = DEFAULT_PROVISIONING_PATH
) -> dict[str, str]:
    """Every generated file's path (relative to the output dir) and content."""
    files: dict[str, str] = {}
    for uid, board in build_dashboards(settings).items():
        files[f"{uid}.json"] = render(for_import(board))
        files[f"{PROVISIONING_DIR}/{uid}.json"] = render(board)
    files[f"{PROVISIONING_DIR}/{PROVIDER_FILE}"] = provider_yaml(provisioning_path)
    return files


def generate(
    config: str | Path | None = None,
    out: str | Path | None = None,
    *,
    provisioning_path: str = DEFAULT_PROVISIONING_PATH,
) -> list[Path]:
    """Write every dashboard for the thresholds in ``config`` under ``out``; return the paths.

    ``config`` None is the packaged ``alerts/thresholds.yaml``; ``out`` None is
    ``dashboards/`` beside ``config`` (never inside the installed package). Files are replaced
    atomically; dashboards the config no longer produces (a service removed) are deleted.
    """
    settings = load_settings(config)
    if out is not None:
        root = Path(out)
    elif config is None:
        raise DashboardError(
            "the packaged thresholds file has no project folder; pass out=DIR (the CLI: run "
            "`hlthz init` and generate from its hlthz.yaml, or pass --out)"
        )
    else:
        root = output_dir(Project(Path(config).resolve()), None, "dashboards")
    written = []
    files = expected_files(settings, provisioning_path=provisioning_path)
    for stale in (*root.glob("hlthz-*.json"), *(root / PROVISIONING_DIR).glob("hlthz-*.json")):
        if stale.relative_to(root).as_posix() not in files:
            stale.unlink()  # a dashboard of a service or signal the config no longer has
    for relative, content in files.items():
        path = root / relative
        try:
            atomic_write(path, content)
        except OSError as exc:
            raise DashboardError(f"{path}: cannot write ({exc.strerror}); check --out") from exc
        written.append(path)
    return written
