"""The ``hlthz`` command line: a root group whose command groups load lazily.

Each group lives in its own module, ``hlthz.tools.cli.<name>``, and only parses arguments
before calling a library function. Loading is lazy so ``hlthz --help`` stays fast and so heavy
imports (locust patches the socket module with gevent when imported) happen only in the command
that needs them.
Every :class:`hlthz.errors.HlthzError` raised below becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from hlthz import __version__
from hlthz.errors import HlthzError, MissingExtra
from hlthz.extras import extra_of

# Each loader imports its group's module when the group is used; none runs for ``hlthz --help``.


def _api() -> click.Command:
    from hlthz.tools.cli.api import api

    return api


def _alerts() -> click.Command:
    from hlthz.tools.cli.alerts import alerts

    return alerts


def _dashboards() -> click.Command:
    from hlthz.tools.cli.dashboards import dashboards

    return dashboards


def _init() -> click.Command:
    from hlthz.tools.cli.init import init

    return init


def _replay() -> click.Command:
    from hlthz.tools.cli.replay import replay

    return replay


def _stack() -> click.Command:
    from hlthz.tools.cli.stack import stack

    return stack


def _diagnose() -> click.Command:
    from hlthz.tools.cli.diagnose import diagnose

    return diagnose


def _demo() -> click.Command:
    from hlthz.tools.cli.demo import demo

    return demo


# name -> (loader, one-line help shown by ``hlthz --help``)
_GROUPS: dict[str, tuple[Callable[[], click.Command], str]] = {
    "api": (_api, "Serve, seed and work the demo e-commerce API."),
    "alerts": (_alerts, "Generate, check and backtest alert rules and routing."),
    "dashboards": (_dashboards, "Generate and check Grafana dashboards."),
    "init": (_init, "Write a commented hlthz.yaml for your project."),
    "replay": (_replay, "Record, import, inspect, replay and compare traffic."),
    "stack": (_stack, "Run Prometheus, Alertmanager and the API locally."),
    "demo": (_demo, "Tell the whole before/after story end to end."),
    "diagnose": (_diagnose, "Rank what makes an API slow, per route, from its metrics."),
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
        return None if entry is None else entry[0]()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table so listing groups imports nothing.
        rows = [(name, _GROUPS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HlthzError as exc:
            fail(str(exc), exc.exit_code)
        except ModuleNotFoundError as exc:
            # A command that forgot hlthz.extras.require: still one line naming the extra.
            extra = extra_of(exc.name or "")
            if extra is None:
                raise
            what = " ".join(["hlthz", *filter(None, [ctx.invoked_subcommand])])
            missing = MissingExtra(what, extra, exc.name or "")
            fail(str(missing), missing.exit_code)
        except click.UsageError as exc:
            if isinstance(exc, click.exceptions.NoArgsIsHelpError):
                raise
            # One line like every other error (click would print usage, a hint and the error
            # on three); quoted values are short (excerpt) so the line stays readable.
            where = exc.ctx.command_path if exc.ctx is not None else "hlthz"
            message = " ".join(exc.format_message().split())
            fail(f"{where}: {message} (see {where} --help)", 2)
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
