"""``hlthz demo``: the end-to-end story. A placeholder until the demo issue lands."""

import click

from hlthz.errors import HlthzError


class _NotBuilt(HlthzError):
    exit_code = 1


@click.command()
@click.option("--quick", is_flag=True, help="A shorter run (under 2 minutes).")
def demo(quick: bool) -> None:
    """Seed, serve before/after, record, replay, compare and report (not built yet)."""
    raise _NotBuilt(
        "hlthz demo is not built yet: it needs the demo API, capture and replay (issues 3, 5, 7, 8)"
    )
