"""``hlthz dashboards``: commands are added as the dashboards issue lands."""

import click


@click.group()
def dashboards() -> None:
    """(not built yet)"""
