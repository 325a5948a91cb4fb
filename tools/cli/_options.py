"""Option groups shared by several replay commands (``import`` and ``run`` rewrite alike)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from hlthz.inputs import excerpt

if TYPE_CHECKING:
    from hlthz.replay.capture.rewrite import Rewrite

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "parse_sample",
    "rewrite_fields",
    "rewrite_from",
    "rewrite_options",
    "selection_fields",
    "selection_options",
]


def selection_options(func: F) -> F:
    """``--route``, ``--exclude-route``, ``--method``, ``--sample``, ``--sample-key``: which
    records an import keeps or a run sends (docs/capture.md, docs/replay.md)."""
    options = [
        click.option(
            "--route",
            "routes_in",
            multiple=True,
            metavar="ROUTE",
            help="Only this route: 'GET /api/products/{id}' or '/api/*' (repeatable; named as "
            "inspect names them).",
        ),
        click.option(
            "--exclude-route",
            multiple=True,
            metavar="ROUTE",
            help="Leave out this route (repeatable).",
        ),
        click.option(
            "--method", "methods", multiple=True, metavar="METHOD", help="Only METHOD (repeatable)."
        ),
        click.option(
            "--sample",
            default="100%",
            show_default=True,
            help="Share of sessions: 0.1 or 10% (the same sessions every run).",
        ),
        click.option(
            "--sample-key",
            metavar="header:NAME|cookie:NAME",
            help="Sample by this value (default: the record's session, else its id).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_sample(value: str) -> float:
    """``"10%"`` or ``"0.1"`` -> 0.1."""
    text = value.strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(
            f"{excerpt(value)}: use a fraction (0.1) or a percentage (10%)"
        ) from None
    if not 0.0 <= fraction <= 1.0:
        raise click.BadParameter(f"{excerpt(value)}: must be between 0 and 1 (0 % and 100 %)")
    return fraction


def selection_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    """:func:`selection_options`' values under the field names that
    :class:`~hlthz.replay.capture.select.Selection` and
    :class:`~hlthz.replay.controls.Controls` share; ``--sample`` parsed."""
    return {
        "routes": kwargs["routes_in"],
        "exclude_routes": kwargs["exclude_route"],
        "methods": kwargs["methods"],
        "sample": parse_sample(kwargs["sample"]),
        "sample_key": kwargs["sample_key"],
    }


def rewrite_options(func: F) -> F:
    """``--rewrite-path``, ``--set-query``, ``--drop-query``, ``--rewrite-header``,
    ``--set-header``, ``--drop-header`` (docs/capture.md, "Rewriting")."""
    options = [
        click.option(
            "--rewrite-path",
            "rewrite_paths",
            nargs=2,
            multiple=True,
            metavar="REGEX REPLACEMENT",
            help="Rewrite the path (without its query): '^/v1/(.*)' '/v2/$1' (repeatable).",
        ),
        click.option(
            "--set-query",
            "set_query",
            nargs=2,
            multiple=True,
            metavar="NAME VALUE",
            help="Set this query parameter in every request (repeatable).",
        ),
        click.option(
            "--drop-query",
            "drop_query",
            multiple=True,
            metavar="NAME",
            help="Remove this query parameter (repeatable).",
        ),
        click.option(
            "--rewrite-header",
            "header_rules",
            nargs=3,
            multiple=True,
            metavar="NAME REGEX REPLACEMENT",
            help="Rewrite this header's value: Host '(.*)\\.prod' '$1.staging' (repeatable).",
        ),
        click.option(
            "--set-header",
            "set_headers",
            multiple=True,
            metavar="'NAME: VALUE'",
            help="Set this header in every request; an empty value removes it (repeatable).",
        ),
        click.option(
            "--drop-header",
            "drop_headers",
            multiple=True,
            metavar="NAME",
            help="Remove this header from every request (repeatable).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def rewrite_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    """:func:`rewrite_options`' values (popped from ``kwargs``) under their option names, which
    are :class:`~hlthz.replay.controls.Controls`' field names; ``--set-header`` parsed."""
    from hlthz.errors import UsageError

    set_headers = []
    for text in kwargs.pop("set_headers", ()):
        name, colon, value = text.partition(":")
        if not colon:
            raise UsageError(f"--set-header {text[:60]!r}: use 'NAME: VALUE'")
        set_headers.append((name, value))
    return {
        "rewrite_paths": tuple(kwargs.pop("rewrite_paths", ())),
        "set_query": tuple(kwargs.pop("set_query", ())),
        "drop_query": tuple(kwargs.pop("drop_query", ())),
        "header_rules": tuple(kwargs.pop("header_rules", ())),
        "set_headers": tuple(set_headers),
        "drop_headers": tuple(kwargs.pop("drop_headers", ())),
    }


def rewrite_from(kwargs: dict[str, Any]) -> Rewrite:
    """The :class:`Rewrite` of :func:`rewrite_options`' values (popped from ``kwargs``)."""
    from hlthz.replay.capture.rewrite import Rewrite

    fields = rewrite_fields(kwargs)
    return Rewrite(paths=fields.pop("rewrite_paths"), **fields)
