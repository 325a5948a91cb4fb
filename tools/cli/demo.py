"""``hlthz demo``: the end-to-end before/after story (see :mod:`hlthz.tools.demo.story`)."""

from __future__ import annotations

from pathlib import Path

import click

from hlthz.extras import require
from hlthz.tools.demo import DEFAULT_DATA_DIR, DEFAULT_OUT


@click.command()
@click.option(
    "--quick", is_flag=True, help="A smaller data set and less traffic (under 2 minutes)."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where summary.json, report.html, the capture, replay reports and logs go.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Where seeded data sets are kept and reused between runs.",
)
@click.option(
    "--optimization",
    "optimizations",
    multiple=True,
    metavar="NAME",
    help="Also replay `before` with only this switch on, to measure it alone (repeatable).",
)
@click.option(
    "--each-optimization", is_flag=True, help="Measure every optimization alone (8 more replays)."
)
def demo(
    quick: bool,
    out_dir: Path,
    data_dir: Path,
    optimizations: tuple[str, ...],
    each_optimization: bool,
) -> None:
    """Seed, record production traffic, replay it on before and after, compare and report.

    Runs on the embedded defaults only (SQLite, in-process cache and queue), on loopback, and
    stops every process it started when it ends, fails or is interrupted.
    """
    require("demo", what="hlthz demo")
    from hlthz.tools.demo.story import DemoOptions, run_demo

    if each_optimization:
        from hlthz.demo_api.settings import OPTIMIZATIONS

        optimizations = tuple(OPTIMIZATIONS)
    run_demo(
        DemoOptions(out_dir=out_dir, quick=quick, data_dir=data_dir, optimizations=optimizations)
    )
