"""``hlthz dashboards generate|check``: Grafana dashboards from the thresholds file."""

from __future__ import annotations

from pathlib import Path

import click

from hlthz.extras import require

# hlthz.dashboards.generate.DEFAULT_PROVISIONING_PATH, repeated so that `--help` works without
# grafanalib (the 'dashboards' extra); tests/dashboards/test_cli.py checks they agree.
PROVISIONING_PATH = "/var/lib/grafana/dashboards/hlthz"


@click.group()
def dashboards() -> None:
    """Generate and check Grafana dashboards (docs/dashboards.md)."""


@dashboards.command()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Project file [default: ./hlthz.yaml, or $HLTHZ_CONFIG].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output directory: <uid>.json for UI import, provisioning/ for file provisioning "
    "[default: dashboards/ beside the project file].",
)
@click.option(
    "--provisioning-path",
    default=PROVISIONING_PATH,
    show_default=True,
    help="Directory the provider YAML tells Grafana to load the provisioning JSON from.",
)
def generate(config: Path | None, out: Path | None, provisioning_path: str) -> None:
    """Write the four dashboards, in import and provisioning form."""
    require("dashboards", what="hlthz dashboards generate")
    from hlthz.alerts import find_project, output_dir
    from hlthz.dashboards import generate as write

    # With --out and no project file: the packaged worked example, written where asked.
    project = find_project(config, required=out is None)
    root = output_dir(project, out, "dashboards") if project else Path(out or ".")
    source = project.config if project else None
    for path in write(source, root, provisioning_path=provisioning_path):
        click.echo(str(path))


@dashboards.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of dashboards to check (and its provisioning/ subdirectory) "
    "[default: dashboards/ beside the project file].",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Project file the dashboards must match [default: ./hlthz.yaml, or $HLTHZ_CONFIG].",
)
@click.option(
    "--prometheus",
    metavar="URL",
    default=None,
    help="Also run every panel query against this Prometheus (e.g. http://127.0.0.1:9090).",
)
@click.option("--job", default=None, help="Value of $job in queries (default: every job).")
@click.option(
    "--rate-interval",
    default=None,
    metavar="DURATION",
    help="Value of $__rate_interval (default: 4 x scrape_interval of the thresholds file).",
)
@click.option(
    "--drift/--no-drift",
    default=True,
    show_default=True,
    help="Require HLTHZ's dashboards to equal what `generate` writes for the config.",
)
@click.option("-v", "--verbose", is_flag=True, help="List every query's outcome.")
def check(
    directory: Path | None,
    config: Path | None,
    prometheus: str | None,
    job: str | None,
    rate_interval: str | None,
    drift: bool,
    verbose: bool,
) -> None:
    """Lint dashboards offline; with --prometheus, prove every panel query returns data.

    A panel of a metric family the app does not emit (database, pool, cache, jobs) is
    skipped, saying so. Exit code 0: all good; 1: a lint finding, a failing query or an
    unexpected empty panel;
    2: bad input (unreadable file, bad config, Prometheus unreachable).
    """
    require("dashboards", what="hlthz dashboards check")
    from hlthz.alerts import find_project
    from hlthz.dashboards import check_dashboards, load_settings

    project = find_project(config, required=directory is None)
    report = check_dashboards(
        directory or (project.dashboards_dir if project else None),
        settings=load_settings(project.config if project else None),
        prometheus=prometheus,
        job=job,
        rate_interval=rate_interval,
        drift=drift,
    )
    for line in report.lines(verbose=verbose):
        click.echo(line)
    report.raise_for_failures()
