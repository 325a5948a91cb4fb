"""``hlthz replay``: capture commands and replay commands live in two modules."""

import click

from hlthz.tools.cli.replay_capture import COMMANDS as _CAPTURE_COMMANDS
from hlthz.tools.cli.replay_run import COMMANDS as _RUN_COMMANDS


@click.group()
def replay() -> None:
    """Record, import, export and inspect captures; replay, compare, diff and gate releases."""


for _command in (*_CAPTURE_COMMANDS, *_RUN_COMMANDS):
    replay.add_command(_command)
