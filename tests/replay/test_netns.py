"""A distributed replay across hosts: workers in network namespaces this test makes.

Three namespaces on one bridge stand for three hosts with their own addresses (veth pairs;
nothing leaves this machine): the target in one, a worker in each of two others, the master in
the test's own namespace on the bridge's address. Each worker runs in an empty folder, in a
mount namespace where the capture's folder is an empty tmpfs: it can only replay what the
master streams. The merged report must count what a single-process run of the same capture
counts, route by route, and its histogram must be exactly the sum of the workers'.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hlthz.procs import ManagedProcess, free_port
from hlthz.replay import ReplayPlan, run_replay
from hlthz.replay.timing import decode, new_histogram
from tests.replay.conftest import REPO, start_target, write_capture

_NET = "10.213.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class _Hosts:
    """A bridge with the test's address and a namespace per host on it (``.10``, ``.11``...)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.bridge = f"hzbr{tag}"
        self.namespaces: list[str] = []

    def __enter__(self) -> _Hosts:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{_NET}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add(self, name: str) -> str:
        """A new namespace ``name``; returns its address."""
        index = len(self.namespaces)
        ns = f"hz{self.tag}{name}"
        outside, inside = f"hz{self.tag}o{index}", f"hz{self.tag}i{index}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        address = f"{_NET}.{10 + index}"
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return address

    def __exit__(self, *exc: object) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)


@pytest.fixture
def hosts() -> Iterator[_Hosts]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("network namespaces need root and iproute2 (scripts/install-system-deps)")
        pytest.skip("network namespaces need root and iproute2")
    with _Hosts(str(os.getpid() % 10000)) as made:
        yield made


@pytest.mark.slow
def test_workers_on_other_hosts_replay_what_the_master_streams(
    tmp_path: Path, hosts: _Hosts
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    records = [(i * 0.004, "GET", f"/delay/{1 + i % 4}") for i in range(600)]
    capture = write_capture(private / "c.jsonl", records, session=lambda i: f"user-{i % 23}")

    # The single-process reference, on loopback.
    local = start_target(tmp_path)
    try:
        single = run_replay(ReplayPlan(capture, local.url))
    finally:
        local.stop()

    target_ip = hosts.add("t")
    worker_ips = [hosts.add("w1"), hosts.add("w2")]
    port = free_port()
    python = sys.executable
    target = ManagedProcess(
        "netns-target",
        [
            "ip", "netns", "exec", hosts.namespaces[0],
            python, "-m", "tests.replay.target_app", str(port), target_ip,
        ],
        log_path=tmp_path / "target.log",
        cwd=REPO,
    )  # fmt: skip
    try:
        target.launch()
        url = f"http://{target_ip}:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/count", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        master_port = free_port()
        report = tmp_path / "distributed.json"
        master = subprocess.Popen(
            [
                python, "-c", "from hlthz.tools.cli import main; main()", "replay", "run",
                str(capture), "--target", url, "--remote-workers", "2",
                "--master-bind", f"{_NET}.1:{master_port}", "--report", str(report),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        workers = []
        for index, ns in enumerate(hosts.namespaces[1:]):
            home = tmp_path / f"worker-{index}"
            home.mkdir()
            # Its own mount namespace, where the capture's folder is an empty tmpfs.
            script = (
                f"mount -t tmpfs -o size=1m,mode=0700 none {private} && "
                f"test ! -e {capture} && cd {home} && exec {python} -c "
                "'from hlthz.tools.cli import main; main()' replay worker "
                f"--master {_NET}.1:{master_port}"
            )
            workers.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, "unshare", "--mount", "sh", "-c", script],
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        try:
            _, master_err = master.communicate(timeout=120)
            worker_errs = [w.communicate(timeout=30)[1] for w in workers]
        finally:
            for proc in (master, *workers):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert master.returncode == 0, master_err
        assert [w.returncode for w in workers] == [0, 0], worker_errs
        data = json.loads(report.read_text())
        served = json.load(urllib.request.urlopen(f"{url}/count", timeout=5))
    finally:
        target.stop()

    assert worker_ips[0] != worker_ips[1] != target_ip
    assert data["summary"]["requests"] == single.summary.requests == 600
    assert data["summary"]["errors"] == 0
    assert served["methods"] == {"GET": 600}
    assert {r["route"]: r["requests"] for r in data["routes"]} == {
        r["route"]: r["requests"] for r in single.to_dict()["routes"]
    }
    shards = data["workers"]["shards"]
    assert data["workers"]["finished"] == 2 and data["workers"]["lost"] == []
    assert [s["shipped"] for s in shards] == [s["sent"] for s in shards]
    assert sum(s["sent"] for s in shards) == 600 and all(s["sent"] for s in shards)
    merged = new_histogram()
    for shard in shards:
        merged.add(decode(shard["latency_hdr"]))
    report_hist = decode(data["histograms"]["latency"])
    assert merged.get_total_count() == report_hist.get_total_count() == 600
    for pct in (50, 90, 99, 100):
        assert merged.get_value_at_percentile(pct) == report_hist.get_value_at_percentile(pct)
