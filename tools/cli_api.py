"""``hlthz api``: commands are added as the api issue lands."""

import click


@click.group()
def api() -> None:
    """(not built yet)"""
