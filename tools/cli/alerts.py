"""``hlthz alerts generate|check``: alert rules, routing, runbooks and tests from one file."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def alerts() -> None:
    """Generate and check alert rules, Alertmanager routing, runbooks and promtool tests.

    Everything comes from one thresholds file (default: the packaged alerts/thresholds.yaml).
    """


_CONFIG = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Thresholds file [default: alerts/thresholds.yaml].",
)


@alerts.command()
@_CONFIG
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output root: writes generated/ and runbooks/ under it [default: the alerts/ folder].",
)
def generate(config: Path | None, out: Path | None) -> None:
    """Write generated/hlthz.rules.yml, generated/alertmanager.yml, generated/tests/*.yml
    and runbooks/*.md."""
    from hlthz.alerts.generator import generate as _generate

    written = _generate(config, out)
    root = written[0].parents[1] if written else out
    click.echo(f"wrote {len(written)} files under {root}")


@alerts.command()
@_CONFIG
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Root holding generated/ and runbooks/ [default: the alerts/ folder].",
)
def check(config: Path | None, directory: Path | None) -> None:
    """Run promtool check/test rules, amtool check-config and HLTHZ's lint.

    Exit 1 with the findings when anything fails; 2 for a bad config or a missing tool.
    """
    from hlthz.alerts.checker import check as _check

    report = _check(config, directory)
    for line in report.lines():
        click.echo(line)
    report.raise_for_failures()
