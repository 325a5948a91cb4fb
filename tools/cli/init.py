"""``hlthz init``: write a commented ``hlthz.yaml`` for your project."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "directory", default=".", type=click.Path(file_okay=False, path_type=Path), required=False
)
@click.option(
    "--from-metrics",
    metavar="URL",
    help="Read the running app's metrics page (http://127.0.0.1:8000/metrics) and set "
    "`signals` to the families it emits.",
)
def init(directory: Path, from_metrics: str | None) -> None:
    """Write DIRECTORY/hlthz.yaml (default: here), commented, with the default thresholds.

    Every other command finds it (./hlthz.yaml, --config FILE or HLTHZ_CONFIG) and writes
    alerts/ and dashboards/ beside it. An existing file is never overwritten (exit 2).
    """
    from hlthz.alerts.project import init_project
    from hlthz.alerts.signals import detect_signals

    signals = detect_signals(from_metrics) if from_metrics else None
    path = init_project(directory, signals=signals, detected_from=from_metrics)
    click.echo(f"wrote {path}")
    if signals is not None:
        click.echo(f"signals detected from {from_metrics}: {', '.join(signals) or 'none'}")
    click.echo(
        "next: edit it (thresholds, services, receivers), then run `hlthz alerts generate`, "
        "`hlthz alerts check` and `hlthz dashboards generate` beside it"
    )
