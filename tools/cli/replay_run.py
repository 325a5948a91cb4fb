"""``hlthz replay run | compare | diff | worker``: replay, gate and diff (thin click wrappers).

Nothing here imports locust: ``run`` calls :func:`hlthz.replay.engine.run_replay`, which runs the
engine in a child process, and ``worker`` execs that child in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from hlthz.errors import GateFailed, ReplayError
from hlthz.extras import require
from hlthz.tools.cli._options import (
    rewrite_fields,
    rewrite_options,
    selection_fields,
    selection_options,
)


@click.command("run")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option(
    "--target", required=True, help="Base URL every request goes to, e.g. http://127.0.0.1:8000."
)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Replay speed factor.")
@click.option("--rate", type=float, help="Send evenly at this many requests/s instead.")
@click.option("--duration", type=float, help="Stop after this many seconds.")
@click.option("--loop", is_flag=True, help="Start the capture again when it ends.")
@click.option("--max-gap", type=float, help="Squeeze idle stretches longer than this (seconds).")
@click.option(
    "--allow-writes", is_flag=True, help="Also send POST/PUT/PATCH/DELETE (skipped otherwise)."
)
@click.option(
    "--header", "headers", multiple=True, metavar="'K: V'", help="Set a header ('K:' removes it)."
)
@click.option(
    "--timeout", type=float, default=10.0, show_default=True, help="Per-request timeout (s)."
)
@click.option(
    "--concurrency",
    type=int,
    default=1000,
    show_default=True,
    help="Max requests in flight per process.",
)
@click.option(
    "--workers",
    type=int,
    default=0,
    show_default=True,
    help="Local worker processes (0: one process).",
)
@click.option(
    "--remote-workers", type=int, default=0, help="Also wait for N 'hlthz replay worker' processes."
)
@click.option("--master-bind", metavar="HOST:PORT", help="Where the master listens for workers.")
@click.option(
    "--reassign-lost",
    is_flag=True,
    help="Send a lost worker's remaining requests through the other workers.",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    help="Capture format (auto, hlthz, gor, har, nginx).",
)
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON report here."
)
@click.option(
    "--html", type=click.Path(dir_okay=False, path_type=Path), help="Write the HTML report here."
)
@click.option("--name", help="Run name (the 'run' label of the replay's metrics).")
@click.option("--metrics-port", type=int, help="Serve the replay's /metrics on 127.0.0.1:PORT.")
@click.option("--insecure", is_flag=True, help="Do not verify an https target's certificate.")
@click.option(
    "--routes",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Name routes by these templates: an OpenAPI document or one template per line.",
)
@click.option(
    "--baseline",
    metavar="URL",
    help="Interleaved A/B: also replay against this released build, in alternating blocks.",
)
@click.option(
    "--block",
    type=int,
    default=10,
    show_default=True,
    help="Requests per block of an interleaved replay.",
)
@click.option(
    "--max-body",
    type=int,
    default=16 * 2**20,
    show_default=True,
    help="Cut off longer response bodies (bytes; a failure).",
)
@click.option(
    "--deadline",
    type=float,
    default=30.0,
    show_default=True,
    help="Abandon a request after this many seconds in all (a failure).",
)
@selection_options
@click.option(
    "--warmup",
    type=float,
    default=0.0,
    show_default=True,
    help="Send the first SECONDS of the timeline but leave them out of the statistics.",
)
@rewrite_options
@click.option("--no-progress", is_flag=True, help="No live progress line.")
def run_command(
    captures: tuple[str, ...],
    target: str,
    speed: float,
    rate: float | None,
    duration: float | None,
    loop: bool,
    max_gap: float | None,
    allow_writes: bool,
    headers: tuple[str, ...],
    timeout: float,
    concurrency: int,
    workers: int,
    remote_workers: int,
    master_bind: str | None,
    reassign_lost: bool,
    fmt: str,
    report: Path | None,
    html: Path | None,
    name: str | None,
    metrics_port: int | None,
    insecure: bool,
    routes: Path | None,
    baseline: str | None,
    block: int,
    max_body: int,
    deadline: float,
    no_progress: bool,
    **controls: Any,
) -> None:
    """Replay CAPTURE against --target on its original timeline (open model); with
    --baseline URL, against both builds in alternating blocks (one report holds both).

    Several CAPTUREs (or quoted globs: 'captures/shop-*.jsonl') are replayed as one, merged
    by send time."""
    require("replay", what="hlthz replay run")
    from hlthz.replay.capture.inputs import expand_inputs
    from hlthz.replay.controls import Controls
    from hlthz.replay.engine import run_replay
    from hlthz.replay.plan import ReplayPlan, parse_header
    from hlthz.replay.report import print_summary
    from hlthz.replay.schedule import ScheduleOptions
    from hlthz.routes import Routes

    with _options_named():
        plan_controls = Controls(
            **selection_fields(controls), warmup=controls["warmup"], **rewrite_fields(controls)
        )
        files = expand_inputs(captures)
        plan = ReplayPlan(
            capture=files[0],
            more_captures=tuple(files[1:]),
            target=target,
            format=fmt,
            schedule=ScheduleOptions(
                speed=speed,
                rate=rate,
                duration=duration,
                loop=loop,
                max_gap=max_gap,
                allow_writes=allow_writes,
            ),
            headers=tuple(parse_header(text, index=i) for i, text in enumerate(headers, 1)),
            timeout=timeout,
            concurrency=concurrency,
            workers=workers,
            remote_workers=remote_workers,
            master_bind=master_bind,
            reassign_lost=reassign_lost,
            name=name,
            progress=not no_progress and sys.stderr.isatty(),
            metrics_port=metrics_port,
            insecure=insecure,
            routes=tuple(Routes.from_file(routes).templates) if routes else (),
            baseline=baseline,
            block=block,
            max_body=max_body,
            deadline=deadline,
            controls=plan_controls,
        )
        result = run_replay(plan, report=report, html=html)
    if result.baseline is not None:
        click.echo(f"baseline side ({baseline}):")
        print_summary(result.baseline)
        click.echo(f"candidate side ({target}):")
    print_summary(result)
    if report is not None:
        click.echo(f"report: {report}", err=True)
    if result.interrupted:
        sys.exit(130)


#: Plan fields and run_replay parameters whose option is not ``--`` + the field with dashes.
_OPTION_OF = {"headers": "--header", "capture": "CAPTURE"}


def option_of(field: str) -> str:
    """The option of ``replay run`` that sets a :class:`ReplayPlan` field (or ``run_replay``
    parameter): ``schedule.max_gap`` -> ``--max-gap``, ``headers`` -> ``--header``."""
    name = field.rpartition(".")[2]
    return _OPTION_OF.get(name, "--" + name.replace("_", "-"))


@contextlib.contextmanager
def _options_named() -> Iterator[None]:
    # The library names fields ("timeout: must be > 0 seconds, got 0"); a user of the command
    # typed options ("--timeout must be > 0 seconds, got 0").
    from hlthz.errors import PlanError

    try:
        yield
    except PlanError as exc:
        if exc.field == "controls":  # the problem names its option already
            raise ReplayError(exc.problem) from None
        raise ReplayError(f"{option_of(exc.field)} {exc.problem}") from None


@click.command("compare")
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--fail-on",
    "fail_on",
    multiple=True,
    metavar="EXPR",
    help="Gate, e.g. 'p95 > +10%' (repeatable).",
)
@click.option(
    "--min-samples",
    type=int,
    default=20,
    show_default=True,
    help="Routes with fewer requests are not judged.",
)
@click.option(
    "--min-effect",
    type=float,
    default=2.0,
    show_default=True,
    help="A relative latency gate fails only on a change of at least this many ms too.",
)
@click.option(
    "--alpha",
    type=float,
    default=0.05,
    show_default=True,
    help="False discovery rate across all checks.",
)
@click.option(
    "--count-tolerance",
    type=float,
    default=5.0,
    show_default=True,
    help="Refuse when the request counts differ by more than this many percent.",
)
@click.option(
    "--max-lag",
    type=float,
    default=100.0,
    show_default=True,
    help="Refuse a report whose schedule lag P99 is above this (ms).",
)
@click.option("--allow-interrupted", is_flag=True, help="Judge interrupted runs and lost workers.")
@click.option("--allow-lag", is_flag=True, help="Judge runs whose generator was the bottleneck.")
@click.option("--allow-different-captures", is_flag=True, help="Judge replays of other captures.")
@click.option("--allow-count-mismatch", is_flag=True, help="Judge request counts far apart.")
@click.option(
    "--allow-no-samples",
    is_flag=True,
    help="Judge reports without latency samples on their percentiles alone.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here."
)
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML report with the baseline overlay.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the comparison as JSON.",
)
def compare_command(
    reports: tuple[Path, ...],
    fail_on: tuple[str, ...],
    min_samples: int,
    min_effect: float,
    alpha: float,
    count_tolerance: float,
    max_lag: float,
    allow_interrupted: bool,
    allow_lag: bool,
    allow_different_captures: bool,
    allow_count_mismatch: bool,
    allow_no_samples: bool,
    junit: Path | None,
    html: Path | None,
    json_out: Path | None,
) -> None:
    """Gate CANDIDATE against BASE (REPORTS: BASE CANDIDATE, or one interleaved report of
    'replay run --baseline'); exit 1 when a gate fails, 2 when nothing could be judged."""
    require("replay", what="hlthz replay compare")
    from hlthz.files import atomic_write
    from hlthz.replay.compare import DEFAULT_GATES, Allow, GateOptions, compare_reports
    from hlthz.replay.report import Report

    options = GateOptions(
        fail_on=tuple(fail_on) or DEFAULT_GATES,
        min_samples=min_samples,
        min_effect=min_effect,
        alpha=alpha,
        count_tolerance=count_tolerance / 100,
        max_lag=max_lag,
        allow=Allow(
            interrupted=allow_interrupted,
            lag=allow_lag,
            different_captures=allow_different_captures,
            count_mismatch=allow_count_mismatch,
            no_samples=allow_no_samples,
        ),
    )
    if len(reports) == 1:
        report = Report.load(reports[0])
        if report.baseline is None:
            raise ReplayError(
                f"{reports[0]}: not an interleaved report (no baseline side); give BASE "
                f"CANDIDATE, or replay with 'hlthz replay run --baseline URL'"
            )
        base, cand = report.baseline, report
        names = (f"{reports[0]} (baseline side)", f"{reports[0]} (candidate side)")
    elif len(reports) == 2:
        base, cand = Report.load(reports[0]), Report.load(reports[1])
        names = (str(reports[0]), str(reports[1]))
    else:
        raise ReplayError("give BASE CANDIDATE (two reports) or one interleaved report")
    comparison = compare_reports(base, cand, options, names=names)
    if junit is not None:
        comparison.write_junit(junit, what="--junit")
    if html is not None:
        comparison.write_html(html, what="--html")
    if json_out is not None:
        document = json.dumps(comparison.to_dict(), indent=1, allow_nan=False) + "\n"
        atomic_write(json_out, document, what="--json")
    for line in comparison.summary_lines():
        click.echo(line)
    if not comparison.judged:
        raise ReplayError(
            "nothing was judged: every check was inconclusive or had too few requests; "
            "replay a longer capture (docs/gate.md: how many requests a capture needs)"
        )
    if comparison.failed:
        raise GateFailed(f"{len(comparison.failures)} release gate check(s) failed (see above)")


@click.command("diff")
@click.argument("capture", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--primary", required=True, help="The released version's base URL.")
@click.option("--candidate", required=True, help="The new version's base URL.")
@click.option("--secondary", help="A second instance of the released version (filters noise).")
@click.option("--header", "headers", multiple=True, help="Response header to compare (repeatable).")
@click.option(
    "--ignore",
    multiple=True,
    metavar="JSONPATH",
    help="Body path to ignore, e.g. '$.items[*].updated_at'.",
)
@click.option("--allow-writes", is_flag=True, help="Also send writes (to all targets!).")
@click.option("--limit", type=int, help="Compare at most N requests.")
@click.option("--timeout", type=float, default=10.0, show_default=True)
@click.option("--format", "fmt", default="auto", show_default=True, help="Capture format.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the grouped differences as JSON.",
)
@click.option(
    "--routes",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Name routes by these templates: an OpenAPI document or one template per line.",
)
def diff_command(
    capture: Path,
    primary: str,
    candidate: str,
    secondary: str | None,
    headers: tuple[str, ...],
    ignore: tuple[str, ...],
    allow_writes: bool,
    limit: int | None,
    timeout: float,
    fmt: str,
    out: Path | None,
    routes: Path | None,
) -> None:
    """Send CAPTURE's requests to primary, candidate (and secondary); exit 1 on real differences."""
    require("replay", what="hlthz replay diff")
    from hlthz.files import ensure_parent
    from hlthz.net import parse_http_url
    from hlthz.replay.capture.sources import iter_records
    from hlthz.replay.diff import run_diff, write_diff
    from hlthz.routes import Routes

    for option, url in (
        ("--primary", primary),
        ("--candidate", candidate),
        ("--secondary", secondary),
    ):
        if url is not None:  # run_diff checks them too, naming its parameters
            parse_http_url(url, what=option)
    if not capture.is_file():
        raise ReplayError(f"{capture}: no such capture file")
    if out is not None:
        ensure_parent(out, what="--out")
    result = run_diff(
        iter_records(capture, format=fmt),
        primary=primary,
        candidate=candidate,
        secondary=secondary,
        headers=headers,
        ignore=ignore,
        allow_writes=allow_writes,
        timeout=timeout,
        limit=limit,
        routes=Routes.from_file(routes) if routes else None,
    )
    if out is not None:
        write_diff(result, out, what="--out")
    for line in result.summary_lines():
        click.echo(line)
    if result.failed:
        raise GateFailed(
            f"{len(result.differences)} group(s) of differences between primary and candidate"
        )


@click.command("worker")
@click.option("--master", required=True, metavar="HOST:PORT", help="The replay master to join.")
def worker_command(master: str) -> None:
    """Join a replay master (hlthz replay run --remote-workers N) and send the requests it
    streams (the worker needs no copy of the capture)."""
    require("replay", what="hlthz replay worker")
    from hlthz.net import parse_host_port
    from hlthz.replay.engine import child_argv

    # Checked here: after execv an error would be the child's traceback, not one line.
    parse_host_port(master, what="--master")
    argv = [*child_argv(), "worker", "--master", master]
    # Replace this process: the engine must start with locust imported first.
    os.execv(argv[0], argv)


COMMANDS: list[click.Command] = [run_command, compare_command, diff_command, worker_command]
