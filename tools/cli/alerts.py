"""``hlthz alerts generate|check``: alert rules, routing, runbooks and tests from one file."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def alerts() -> None:
    """Generate and check alert rules, Alertmanager routing, runbooks and promtool tests.

    Everything comes from your project file: ./hlthz.yaml (`hlthz init` writes one),
    --config FILE, or the file HLTHZ_CONFIG names; files are written beside it, in alerts/.
    """


_CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Project file [default: ./hlthz.yaml, or $HLTHZ_CONFIG].",
)


@alerts.command()
@_CONFIG
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output root: writes generated/ and runbooks/ under it [default: alerts/ beside the "
    "project file].",
)
def generate(config: Path | None, out: Path | None) -> None:
    """Write generated/hlthz.rules.yml, generated/alertmanager.yml, generated/tests/*.yml
    and runbooks/*.md."""
    from hlthz.alerts.generator import generate as _generate
    from hlthz.alerts.project import alerts_root, find_project

    # With --out and no project file: the packaged worked example, written where asked.
    project = find_project(config, required=out is None)
    root = alerts_root(project, out, writing=True) if project else Path(out or ".")
    written = _generate(project.config if project else None, root)
    click.echo(f"wrote {len(written)} files under {root}")


@alerts.command()
@_CONFIG
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Root holding generated/ and runbooks/ [default: alerts/ beside the project file].",
)
def check(config: Path | None, directory: Path | None) -> None:
    """Run promtool check/test rules, amtool check-config and HLTHZ's lint.

    Exit 1 with the findings when anything fails; 2 for a bad config or a missing tool.
    """
    from hlthz.alerts.checker import check as _check
    from hlthz.alerts.project import alerts_root, find_project

    project = find_project(config, required=directory is None)
    if project is None:  # --dir and no project file: the packaged worked example's files
        report = _check(None, directory)
    else:
        report = _check(project.config, alerts_root(project, directory, writing=False))
    for line in report.lines():
        click.echo(line)
    report.raise_for_failures()
