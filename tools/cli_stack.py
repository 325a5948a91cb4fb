"""``hlthz stack``: commands are added as the stack issue lands."""

import click


@click.group()
def stack() -> None:
    """(not built yet)"""
