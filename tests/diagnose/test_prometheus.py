"""``hlthz diagnose --prometheus``: the same findings read from a real Prometheus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlthz.procs import wait_until
from hlthz.tools.cli import main
from tests.conftest import PrometheusFactory, prom_query
from tests.diagnose import load

# Judges timing: make test runs it alone, after the parallel part (pyproject: serial).
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.serial]


def test_prometheus_source_finds_the_before_causes(
    prometheus: PrometheusFactory, tmp_path: Path
) -> None:
    seeded = load.seed_once(tmp_path / "seed")
    with load.served("before", [], seeded, tmp_path / "app") as app:
        target = app.url.removeprefix("http://")
        prom = prometheus([target], job="shop")
        wait_until(
            lambda: bool(prom_query(prom.url, 'up{job="shop"} == 1')), timeout=30, what="scrape"
        )
        # Prometheus' increase() starts a series at its first sample: every route's series
        # must exist before the traffic to count all of it (a long-running app's do).
        for method, url, body in load.mix(app.url)[:5] + load.mix(app.url)[-1:]:
            load.send(url, method, body)
        primed = time.time()
        wait_until(
            lambda: bool(prom_query(prom.url, f"timestamp(up{{job='shop'}}) > {primed + 1.5}")),
            timeout=30,
            what="a scrape after priming",
        )
        load.drive(app.url)
        done = time.time()
        # Two more scrapes after the last request, so increase() sees all of it.
        wait_until(
            lambda: bool(prom_query(prom.url, f"timestamp(up{{job='shop'}}) > {done + 1.5}")),
            timeout=30,
            what="a scrape after the traffic",
        )
        out = tmp_path / "diagnosis.json"
        result = CliRunner().invoke(
            main,
            [
                "diagnose",
                "--prometheus",
                prom.url,
                "--job",
                "shop",
                "--window",
                "2m",
                "--json",
                str(out),
            ],
        )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    found = {(f["cause"], f["method"], f["route"]) for f in document["findings"]}
    assert ("n_plus_one", "GET", "/api/products") in found
    assert ("inline_side_work", "POST", "/api/orders") in found
    assert ("sequential_upstream", "GET", "/api/users/{user_id}/dashboard") in found
    assert ("large_responses", "GET", "/api/products") in found
    listing = [f for f in document["findings"] if f["route"] == "/api/products"]
    assert listing[0]["cause"] == "n_plus_one"
    assert document["source"].startswith("prometheus ")
    # A job that was never scraped: nothing to judge, said so, not a crash.
    empty = CliRunner().invoke(
        main, ["diagnose", "--prometheus", prom.url, "--job", "nope", "--window", "2m"]
    )
    assert empty.exit_code == 0, empty.output
    assert "no requests in the window" in empty.output


def test_bad_urls_are_one_line_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    for args, text in (
        (["--metrics", "localhost:8000/metrics"], "--metrics"),
        (["--prometheus", "ftp://x"], "--prometheus"),
        (["--metrics", "http://127.0.0.1:9/metrics", "--window", "1s"], "cannot read it"),
        (["--prometheus", "http://127.0.0.1:9"], "cannot reach Prometheus"),
        (["--metrics", "http://x/m", "--prometheus", "http://y"], "exactly one of"),
        (["--metrics", "http://x/m", "--window", "soon"], "--window"),
    ):
        result = runner.invoke(main, ["diagnose", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hlthz: error: ") and text in lines[0]
