"""``hlthz diagnose``: rank what makes an API slow, per route, from its metrics."""

from __future__ import annotations

from pathlib import Path

import click

from hlthz.errors import UsageError


def _window(text: str | None) -> float | None:
    if text is None:
        return None
    from hlthz.alerts import parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise UsageError(f"--window {text!r}: give a duration such as 30s, 5m or 1h") from None


@click.command()
@click.option("--prometheus", metavar="URL", default=None, help="Read from this Prometheus.")
@click.option(
    "--metrics",
    metavar="URL",
    default=None,
    help="Scrape this /metrics twice, --window apart (no Prometheus needed).",
)
@click.option("--job", default=None, help="With --prometheus: only this scrape job.")
@click.option(
    "--window",
    default=None,
    help="Look-back with --prometheus [15m]; time between the two scrapes with --metrics [30s].",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the findings as hlthz_diagnosis v1 JSON (docs/formats.md).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["critical", "warning", "info"]),
    default=None,
    help="Exit 1 when a finding is this severe or worse.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Thresholds (project file) [default: ./hlthz.yaml, else the packaged thresholds].",
)
def diagnose(
    prometheus: str | None,
    metrics: str | None,
    job: str | None,
    window: str | None,
    json_path: Path | None,
    fail_on: str | None,
    config: Path | None,
) -> None:
    """Find what makes an API slow from the exporter's metrics (docs/diagnose.md)."""
    from hlthz.errors import DiagnosisFailed
    from hlthz.tools.diagnose import DiagnoseOptions, render_table, write_json
    from hlthz.tools.diagnose import diagnose as run

    options = DiagnoseOptions(
        prometheus=prometheus,
        metrics=metrics,
        job=job,
        window=_window(window),
        config=config,
        fail_on=fail_on,
    )
    result = run(options)
    click.echo(render_table(result))
    if json_path is not None:
        write_json(result, json_path)
    if fail_on is not None and result.fails(fail_on):
        raise DiagnosisFailed(f"a finding is {result.worst()} (--fail-on {fail_on})")
