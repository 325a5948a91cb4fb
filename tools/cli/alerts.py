"""``hlthz alerts generate|check``: alert rules, routing, runbooks and tests from one file."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def alerts() -> None:
    """Generate, check and backtest alert rules, Alertmanager routing, runbooks and tests.

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


def _duration(value: str | None, option: str) -> float | None:
    from hlthz.alerts.config import parse_duration
    from hlthz.errors import UsageError

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: not a Prometheus duration; write it like 15s, 5m or 1h"
        ) from None


@alerts.command()
@click.option(
    "--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090."
)
@click.option(
    "--start", required=True, help="Unix seconds, ISO-8601 (UTC unless a zone), now-7d, -2h."
)
@click.option("--end", default="now", show_default=True, help="Like --start.")
@_CONFIG
@click.option(
    "--against",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A second project file (the what-if), shown beside the first.",
)
@click.option(
    "--incidents",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Incident windows (hlthz_incidents: 1, YAML or JSON): adds precision, recall, "
    "detection delay and reset time.",
)
@click.option(
    "--interval",
    default=None,
    help="Evaluation interval [default: Prometheus' for the hlthz-api group, else the "
    "config's scrape_interval].",
)
@click.option(
    "--flap-window", default="15m", show_default=True, help="Re-firing within it is a flap."
)
@click.option(
    "--grace",
    default="0s",
    show_default=True,
    help="Episodes this long after an incident still match it.",
)
@click.option(
    "--inline",
    is_flag=True,
    help="Inline every recording rule, even those Prometheus runs unchanged (slower; judges "
    "the raw data only).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result as JSON (hlthz_backtest v1, docs/formats.md).",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML page: the table and a timeline of every episode.",
)
def backtest(
    prometheus: str,
    start: str,
    end: str,
    config: Path | None,
    against: Path | None,
    incidents: Path | None,
    interval: str | None,
    flap_window: str,
    grace: str,
    inline: bool,
    json_out: Path | None,
    html_out: Path | None,
) -> None:
    """Evaluate every generated alert over a range of a Prometheus' history.

    Episodes per alert and label set, firing time, flaps and pages/tickets per week; with
    --against the same for a second file; with --incidents, how well they matched.
    """
    from hlthz.alerts.backtest import BacktestOptions, run_backtest
    from hlthz.alerts.incidents import parse_time
    from hlthz.alerts.project import find_project

    project = find_project(config, required=False)
    options = BacktestOptions(
        prometheus=prometheus,
        start=parse_time(start, what="--start"),
        end=parse_time(end, what="--end"),
        config=project.config if project else None,
        against=against,
        interval=_duration(interval, "--interval"),
        incidents=incidents,
        flap_window=_duration(flap_window, "--flap-window") or 0.0,
        grace=_duration(grace, "--grace") or 0.0,
        inline=inline,
    )
    result = run_backtest(options)
    for line in result.table_lines():
        click.echo(line)
    if json_out is not None:
        result.write_json(json_out)
    if html_out is not None:
        result.write_html(html_out)
