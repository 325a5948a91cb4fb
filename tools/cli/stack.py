"""``hlthz stack up|down|status``: Prometheus, Alertmanager, a webhook sink and the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hlthz.errors import StackUnhealthy
from hlthz.extras import require
from hlthz.tools.stack.control import (
    DEFAULT_PORTS,
    DEFAULT_STATE_DIR,
    StackOptions,
    stack_down,
    stack_status,
    stack_up,
)

_dir_option = click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="State directory: generated configs, logs, pid files, received alerts.",
)


@click.group()
def stack() -> None:
    """Run Prometheus, Alertmanager and the API locally, with alerts delivered to a sink."""


@stack.command()
@_dir_option
@click.option(
    "--target",
    metavar="URL",
    help="Scrape your own app at URL (base or metrics URL) instead of starting the demo API.",
)
@click.option("--job", help="Prometheus job name [hlthz-demo-api, or api with --target].")
@click.option(
    "--profile",
    type=click.Choice(["before", "after"]),
    default="after",
    show_default=True,
    help="Demo API profile.",
)
@click.option("--opt", "opts", multiple=True, metavar="NAME=on|off", help="Demo API switch.")
@click.option("--enable-faults", is_flag=True, help="Let PUT /admin/faults inject faults (drills).")
@click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules file [alerts/generated/hlthz.rules.yml beside the project file].",
)
@click.option(
    "--alertmanager-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Routing whose receivers are pointed at the sink [alerts/generated/alertmanager.yml "
    "beside the project file].",
)
@click.option(
    "--config",
    "thresholds",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Project file: scrape interval, and its alerts/generated/ rules and routing "
    "[./hlthz.yaml or $HLTHZ_CONFIG if there is one, else the packaged example].",
)
@click.option("--scrape-interval", metavar="DURATION", help="Override, e.g. 5s.")
@click.option("--group-wait", metavar="DURATION", help="Override Alertmanager's group_wait.")
@click.option("--group-interval", metavar="DURATION", help="Override group_interval.")
@click.option("--repeat-interval", metavar="DURATION", help="Override repeat_interval.")
@click.option("--prometheus-port", type=int, default=DEFAULT_PORTS["prometheus"], show_default=True)
@click.option(
    "--alertmanager-port", type=int, default=DEFAULT_PORTS["alertmanager"], show_default=True
)
@click.option("--sink-port", type=int, default=DEFAULT_PORTS["sink"], show_default=True)
@click.option(
    "--api-port", type=int, default=DEFAULT_PORTS["api"], show_default=True, help="0: any free."
)
def up(
    state_dir: Path,
    target: str | None,
    job: str | None,
    profile: str,
    opts: tuple[str, ...],
    enable_faults: bool,
    rules: Path | None,
    alertmanager_config: Path | None,
    thresholds: Path | None,
    scrape_interval: str | None,
    group_wait: str | None,
    group_interval: str | None,
    repeat_interval: str | None,
    prometheus_port: int,
    alertmanager_port: int,
    sink_port: int,
    api_port: int,
) -> None:
    """Start the stack in the background and print its URLs."""
    if target is None:  # the demo API is part of the stack
        require("demo", what="hlthz stack up (without --target)")
    options = StackOptions(
        state_dir=state_dir,
        target=target,
        job=job,
        profile=profile,
        api_args=tuple(arg for opt in opts for arg in ("--opt", opt)),
        enable_faults=enable_faults,
        rules_file=rules,
        alertmanager_file=alertmanager_config,
        thresholds=thresholds,
        scrape_interval=scrape_interval,
        group_wait=group_wait,
        group_interval=group_interval,
        repeat_interval=repeat_interval,
        ports={
            "prometheus": prometheus_port,
            "alertmanager": alertmanager_port,
            "sink": sink_port,
            "api": api_port,
        },
    )
    state = stack_up(options, echo=lambda line: click.echo(f"  {line}", err=True))
    _print_state(state)
    files = state["files"]
    provisioning = Path(files["grafana_provisioning"])
    click.echo("")
    click.echo(f"Alerts arrive at the sink: {state['services']['sink']['url']}/")
    click.echo(f"  (stored as JSON lines in {files['alerts_received']})")
    click.echo(f"Prometheus config and rules: {files['prometheus_config']}, {files['rules']}")
    click.echo(f"Alertmanager config: {files['alertmanager_config']}")
    click.echo(f"Grafana datasource to provision: {files['grafana_datasource']}")
    if provisioning.is_dir():
        click.echo(f"Grafana dashboards to provision: {provisioning}")
    else:
        click.echo("Grafana dashboards: run `hlthz dashboards generate` to create them")
    click.echo(f"Logs: {files['logs']}")
    click.echo(f"Stop it with: hlthz stack down --dir {state_dir}")


def _print_state(state: dict[str, Any]) -> None:
    click.echo(f"{'service':<13} {'pid':>7}  {'state':<9} url")
    for name, service in state["services"].items():
        if "running" in service:
            status = (
                "healthy" if service["healthy"] else "running" if service["running"] else "stopped"
            )
        else:
            status = "started"
        click.echo(f"{name:<13} {service['pid']:>7}  {status:<9} {service['url']}")
    if state.get("target") and "api" not in state["services"]:
        click.echo(f"{'target':<13} {'-':>7}  {'external':<9} {state['target']}")


@stack.command()
@_dir_option
def down(state_dir: Path) -> None:
    """Stop every process of the stack; keep its logs and configs."""
    stopped = stack_down(state_dir)
    if stopped:
        click.echo(f"stopped: {', '.join(stopped)}")
    else:
        click.echo(f"no stack running from {state_dir}")


@stack.command()
@_dir_option
def status(state_dir: Path) -> None:
    """Show each process of the stack, running or not, and whether it answers."""
    state = stack_status(state_dir)
    if state is None:
        click.echo(f"no stack started from {state_dir}")
        return
    _print_state(state)
    unhealthy = [name for name, s in state["services"].items() if not s["healthy"]]
    if unhealthy:
        raise StackUnhealthy(f"not answering: {', '.join(unhealthy)}; see {state_dir}/logs/")
