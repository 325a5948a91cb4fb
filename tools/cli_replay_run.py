"""Replay subcommands (filled in as the issue lands)."""

import click

COMMANDS: list[click.Command] = []
