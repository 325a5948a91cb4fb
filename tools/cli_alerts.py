"""``hlthz alerts``: commands are added as the alerts issue lands."""

import click


@click.group()
def alerts() -> None:
    """(not built yet)"""
