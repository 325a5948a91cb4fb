"""The ``hlthz`` command line: a root group whose command groups load lazily.

Each group lives in its own module, ``hlthz.tools.cli.<name>``, and only parses arguments
before calling a library function. Loading is lazy so ``hlthz --help`` stays fast and so heavy
imports (locust patches the socket module with gevent when imported) happen only in the command
that needs them.
Every :class:`hlthz.errors.HlthzError` raised below becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from hlthz import __version__
from hlthz.errors import HlthzError

# name -> (module, attribute, one-line help shown by ``hlthz --help``)
_GROUPS: dict[str, tuple[str, str, str]] = {
    "api": ("hlthz.tools.cli.api", "api", "Serve, seed and work the demo e-commerce API."),
    "alerts": ("hlthz.tools.cli.alerts", "alerts", "Generate and check alert rules and routing."),
    "dashboards": (
        "hlthz.tools.cli.dashboards",
        "dashboards",
        "Generate and check Grafana dashboards.",
    ),
    "replay": (
        "hlthz.tools.cli.replay",
        "replay",
        "Record, import, inspect, replay and compare traffic.",
    ),
    "stack": (
        "hlthz.tools.cli.stack",
        "stack",
        "Run Prometheus, Alertmanager and the API locally.",
    ),
    "demo": ("hlthz.tools.cli.demo", "demo", "Tell the whole before/after story end to end."),
}


def fail(message: str, code: int = 2) -> None:
    """Print ``hlthz: error: message`` on stderr and exit with ``code``."""
    click.echo(f"hlthz: error: {message}", err=True)
    sys.exit(code)


class _LazyGroup(click.Group):
    """A group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_GROUPS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _GROUPS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command = getattr(module, entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table so listing groups imports nothing.
        rows = [(name, _GROUPS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HlthzError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("hlthz: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hlthz")
def main() -> None:
    """HLTHZ: make web APIs fast and keep them fast.

    Measure with the exporter, watch with generated alerts and dashboards, and prove each
    release with replayed production traffic.
    """
