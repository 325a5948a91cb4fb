"""``hlthz replay record | import | export | inspect``: the capture half of ``hlthz replay``.

Each command parses its options and calls a library function of :mod:`hlthz.replay`; errors
raised there (:class:`hlthz.errors.ReplayError` and friends) become one line and exit 2.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hlthz.extras import require
from hlthz.inputs import excerpt
from hlthz.tools.cli._options import (
    parse_sample,
    rewrite_from,
    rewrite_options,
    selection_fields,
    selection_options,
)

F = TypeVar("F", bound=Callable[..., Any])

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def _setup_logging() -> None:
    # Warnings such as "FILE:LINE: truncated record skipped" must reach the user once, plainly.
    logging.basicConfig(format="hlthz: %(levelname)s: %(message)s", level=logging.WARNING)
    for level, name in ((logging.WARNING, "warning"), (logging.ERROR, "error")):
        logging.addLevelName(level, name)


def parse_size(value: str | None, option: str) -> int | None:
    """``"100MB"``, ``"64KiB"``, ``"1048576"`` -> bytes; ``None`` stays ``None``."""
    if value is None:
        return None
    match = _SIZE.match(value)
    if not match:
        raise click.BadParameter(
            f"{excerpt(value)}: use a size like 65536, 64KiB or 100MB", param_hint=option
        )
    unit = (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = "kmgt".find(unit[:1]) + 1 if unit[:1] in "kmgt" and unit else 0
    size = float(match.group(1)) * base**power
    if not 1 <= size <= 1 << 50:  # zero, or beyond a petabyte (1e300GiB): no size at all
        raise click.BadParameter(
            f"{excerpt(value)}: use a size from 1 byte to 1PiB, like 65536, 64KiB or 100MB",
            param_hint=option,
        )
    return int(size)


def _redaction_options(func: F) -> F:
    options = [
        click.option(
            "--redact-header",
            "redact_headers",
            multiple=True,
            metavar="NAME",
            help="Also redact this header (repeatable). Authorization, Cookie and every "
            "header whose name looks secret (X-Auth-Token ...) are redacted anyway.",
        ),
        click.option(
            "--redact-field",
            "redact_fields",
            multiple=True,
            metavar="NAME",
            help="Also redact this field, exactly (repeatable). Names containing password, "
            "token, secret, apikey, ... are redacted anyway (docs/capture.md).",
        ),
        click.option(
            "--keep-field",
            "keep_fields",
            multiple=True,
            metavar="NAME",
            help="Never redact this field, even when its name or value looks secret "
            "(repeatable; e.g. a pagination cursor).",
        ),
        click.option(
            "--redact-emails", is_flag=True, help="Replace e-mail addresses in bodies and queries."
        ),
        click.option(
            "--no-redact-cards",
            is_flag=True,
            help="Do not replace Luhn-valid card numbers found in bodies and queries.",
        ),
        click.option(
            "--no-redact-tokens",
            is_flag=True,
            help="Do not replace long random-looking values (32+ characters) by their shape.",
        ),
        click.option(
            "--keep-unparsed-bodies",
            is_flag=True,
            help="Keep request bodies HLTHZ cannot parse (binary, unknown types, br/zstd) as "
            "they are. By default they are dropped and the record marked body_dropped.",
        ),
        click.option(
            "--redact-key",
            envvar="HLTHZ_REDACT_KEY",
            metavar="TEXT",
            help="HMAC key for placeholders, so they match across captures "
            "(env HLTHZ_REDACT_KEY; default: random per run).",
        ),
        click.option(
            "--no-redact",
            is_flag=True,
            help="Write secrets as they came. Only for synthetic traffic.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _redactor(kwargs: dict[str, Any]) -> Any:
    from hlthz.replay.capture.redact import Redactor

    key = kwargs.pop("redact_key", None)
    return Redactor(
        extra_headers=kwargs.pop("redact_headers", ()),
        extra_fields=kwargs.pop("redact_fields", ()),
        keep_fields=kwargs.pop("keep_fields", ()),
        emails=kwargs.pop("redact_emails", False),
        cards=not kwargs.pop("no_redact_cards", False),
        tokens=not kwargs.pop("no_redact_tokens", False),
        keep_unparsed=kwargs.pop("keep_unparsed_bodies", False),
        key=key.encode() if key else None,
        enabled=not kwargs.pop("no_redact", False),
    )


@click.command("record")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Where clients connect.",
)
@click.option(
    "--upstream", required=True, metavar="URL", help="The app, e.g. http://127.0.0.1:8000"
)
@click.option(
    "--out", "-o", required=True, metavar="FILE", help="Capture file (.jsonl or .jsonl.gz)."
)
@click.option(
    "--sample",
    default="100%",
    show_default=True,
    help="Share of requests kept: 0.1 or 10%.",
)
@click.option(
    "--sample-key",
    metavar="header:NAME|cookie:NAME",
    help="Sample consistently by this value, keeping whole sessions.",
)
@click.option("--include", multiple=True, metavar="RULE", help="Only record '[METHOD ]/glob*'.")
@click.option(
    "--exclude",
    multiple=True,
    metavar="RULE",
    help="Do not record '[METHOD ]/glob*' (default: /metrics).",
)
@click.option(
    "--max-body",
    default="64KiB",
    show_default=True,
    metavar="SIZE",
    help="Bytes kept per request body; longer ones are cut and marked body_truncated.",
)
@click.option("--rotate-size", metavar="SIZE", help="Start a new file after this many bytes.")
@click.option("--max-files", type=click.IntRange(min=1), help="Keep at most N rotated files.")
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Requests waiting for the writer before new ones are dropped (and counted).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=30.0,
    show_default=True,
    help="Upstream read/write timeout, seconds (504 when exceeded).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0.001),
    default=5.0,
    show_default=True,
    help="Upstream connect timeout, seconds (502/504 when exceeded).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Upstream connection pool size (kept alive).",
)
@click.option("--no-progress", is_flag=True, help="Do not print the progress line.")
@_redaction_options
def record_cmd(**kwargs: Any) -> None:
    """Run a recording reverse proxy in front of an app in any language.

    Clients talk to --listen, requests go to --upstream, and each exchange is redacted and
    appended to --out. Stop with Ctrl-C; everything queued is written before exit.
    """
    require("replay", what="hlthz replay record")
    from hlthz.errors import ReplayError
    from hlthz.replay.capture.middleware import recording
    from hlthz.replay.capture.proxy import run_proxy
    from hlthz.replay.capture.recorder import DEFAULT_EXCLUDE

    _setup_logging()
    redactor = _redactor(kwargs)
    out = kwargs["out"]
    sample = parse_sample(kwargs["sample"])
    options: dict[str, Any] = {
        "sample": sample,
        "sample_key": kwargs["sample_key"],
        "include": kwargs["include"],
        "exclude": kwargs["exclude"] or DEFAULT_EXCLUDE,
        "max_body": parse_size(kwargs["max_body"], "--max-body"),
        "max_bytes": parse_size(kwargs["rotate_size"], "--rotate-size"),
        "max_files": kwargs["max_files"],
        "queue_size": kwargs["queue_size"],
        "redactor": redactor,
        "source": f"proxy:{kwargs['upstream']}",
        "kind": "asgi",
    }

    def wrap(app: Any) -> Any:
        try:
            wrapped = recording(app, out, **options)
        except ValueError as exc:
            raise ReplayError(f"record: {exc}") from None
        if wrapped.recorder.error is not None:
            wrapped.close()
            raise ReplayError(f"--out {out}: {wrapped.recorder.error}")
        return wrapped

    progress = not kwargs["no_progress"]
    if progress:
        click.echo(
            f"hlthz: recording {kwargs['listen']} -> {kwargs['upstream']} into {out}", err=True
        )
    stats = run_proxy(
        kwargs["listen"],
        kwargs["upstream"],
        wrap,
        timeout=kwargs["timeout"],
        connect_timeout=kwargs["connect_timeout"],
        max_connections=kwargs["max_connections"],
        progress=progress,
    )
    bodies = (
        f" ({stats.bodies_dropped} request bodies HLTHZ cannot redact were dropped; "
        "--keep-unparsed-bodies keeps them)"
        if stats.bodies_dropped
        else ""
    )
    click.echo(
        f"hlthz: proxied {stats.requests} requests, {stats.written} written to {out}{bodies}, "
        f"{stats.dropped} dropped, {stats.upstream_errors} upstream errors",
        err=True,
    )


_FORMATS = ["auto", "gor", "har", "nginx", "hlthz"]


@click.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="auto",
    show_default=True,
    help="Input format (auto detects from the content of each file).",
)
@click.option(
    "--log-format",
    metavar="FORMAT",
    help="nginx log_format string as in nginx.conf (escape=json allowed), or combined, "
    "common, main, json. Default: recognised from the first lines.",
)
@click.option("-o", "--out", required=True, metavar="FILE", help="Capture to write (.jsonl[.gz]).")
@selection_options
@click.option(
    "--routes",
    "routes_file",
    type=click.Path(dir_okay=False),
    help="Name routes by these templates: an OpenAPI document or one template per line.",
)
@click.option("--skip-invalid", is_flag=True, help="Skip and count malformed lines/entries.")
@click.option("--rotate-size", metavar="SIZE", help="Start a new file after this many bytes.")
@rewrite_options
@_redaction_options
def import_cmd(
    files: tuple[str, ...], fmt: str, log_format: str | None, out: str, **kwargs: Any
) -> None:
    """Convert GoReplay .gor, HAR 1.2, nginx/Apache access logs or captures to one capture.

    Several FILEs (or quoted glob patterns such as 'captures/shop-*.jsonl') are merged in
    time order. Route, method and sampling filters apply first, then rewriting rules, then
    redaction, exactly as when recording; the output appears only when complete.
    """
    from hlthz.replay.capture.convert import import_traffic
    from hlthz.replay.capture.select import Selection
    from hlthz.routes import Routes

    _setup_logging()
    selection = Selection(
        **selection_fields(kwargs),
        naming=Routes.from_file(kwargs["routes_file"]) if kwargs["routes_file"] else Routes(),
    )
    result = import_traffic(
        list(files),
        out,
        format=fmt,
        log_format=log_format,
        redactor=_redactor(kwargs),
        selection=selection,
        rewrite=rewrite_from(kwargs),
        skip_invalid=kwargs["skip_invalid"],
        max_bytes=parse_size(kwargs["rotate_size"], "--rotate-size"),
    )
    for detail in result.details:
        click.echo(f"hlthz: {detail}", err=True)
    notes = [
        f"{n} {what}"
        for n, what in (
            (result.invalid, "invalid skipped"),
            (result.truncated, "truncated skipped"),
            (result.not_requests, "not requests skipped"),
            (result.selection.filtered, "filtered out"),
            (result.selection.sampled_out, "sampled out"),
            (result.rewritten, "rewritten"),
        )
        if n
    ]
    source = f"{len(result.inputs)} files" if len(result.inputs) > 1 else files[0]
    dropped = result.redactions.bodies_dropped
    click.echo(
        f"imported {result.records} requests from {source} ({result.source_format}"
        + "".join(f", {note}" for note in notes)
        + f"); {result.redactions.total} values redacted"
        + (
            f", {dropped} {'body' if dropped == 1 else 'bodies'} dropped (a format HLTHZ "
            "cannot redact; the records are marked body_dropped)"
            if dropped
            else ""
        )
        + f" -> {', '.join(map(str, result.outputs))}"
    )


@click.command("merge")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("-o", "--out", required=True, metavar="FILE", help="Capture to write (.jsonl[.gz]).")
@click.option("--skip-invalid", is_flag=True, help="Skip and count malformed lines.")
def merge_cmd(files: tuple[str, ...], out: str, skip_invalid: bool) -> None:
    """Merge captures (per-instance files, per-worker {pid} files, quoted globs such as
    'captures/shop-*.jsonl') into one, in send-time order, with ids kept unique.

    The records pass through redaction again (nothing new is found in a redacted capture;
    a capture written with --no-redact is redacted now). To filter, sample or rewrite while
    merging, use `hlthz replay import` with the same files.
    """
    from hlthz.replay.capture.convert import import_traffic
    from hlthz.replay.capture.redact import Redactor

    _setup_logging()
    result = import_traffic(
        list(files), out, format="hlthz", redactor=Redactor(), skip_invalid=skip_invalid
    )
    skipped = f", {result.invalid} invalid skipped" if result.invalid else ""
    late = f", {result.out_of_order} out of time order" if result.out_of_order else ""
    click.echo(
        f"merged {result.records} requests from {len(result.inputs)} "
        f"{'file' if len(result.inputs) == 1 else 'files'}{skipped}{late} "
        f"-> {', '.join(map(str, result.outputs))}"
    )


@click.command("export")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gor"]),
    default="gor",
    show_default=True,
    help="Output format: GoReplay's .gor (gzip when OUT ends in .gz).",
)
@click.option("-o", "--out", required=True, metavar="FILE", help="File to write.")
@click.option("--skip-invalid", is_flag=True, help="Skip and count malformed lines.")
def export_cmd(files: tuple[str, ...], fmt: str, out: str, skip_invalid: bool) -> None:
    """Write captures in another tool's format, e.g. for `gor --input-file OUT`.

    Several FILEs (or glob patterns) are merged in time order.
    """
    from hlthz.replay.capture.convert import export_traffic

    _setup_logging()
    result = export_traffic(list(files), out, format=fmt, skip_invalid=skip_invalid)
    click.echo(f"exported {result.records} requests to {out} ({fmt})")


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--routes",
    type=click.Path(dir_okay=False),
    help="Name routes by these templates: an OpenAPI document or one template per line.",
)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default="auto",
    show_default=True,
)
@click.option("--log-format", metavar="FORMAT", help="nginx log_format (for --format nginx).")
@click.option("--skip-invalid", is_flag=True, help="Skip and count malformed lines/entries.")
def inspect_cmd(
    files: tuple[str, ...],
    as_json: bool,
    routes: str | None,
    top: int,
    fmt: str,
    log_format: str | None,
    skip_invalid: bool,
) -> None:
    """Summarize captures: records, span, rates, methods, status mix, top routes, redactions.

    Several FILEs (or glob patterns) are merged in time order.
    """
    from hlthz.replay.capture.inspect import format_inspection, inspect_capture
    from hlthz.routes import Routes

    _setup_logging()
    summary = inspect_capture(
        list(files),
        format=fmt,
        log_format=log_format,
        routes=Routes.from_file(routes) if routes else None,
        top=top,
        skip_invalid=skip_invalid,
    )
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_inspection(summary))


COMMANDS: list[click.Command] = [record_cmd, import_cmd, merge_cmd, export_cmd, inspect_cmd]
