"""``hlthz stack``: a real monitoring stack on loopback, started detached and stopped by pid file.

``stack_up`` starts, in this order, a webhook sink (:mod:`hlthz.tools.stack.webhook_sink`), the demo
API (``hlthz api serve``) unless the user's own app is given as ``target``, Alertmanager with the
generated routing whose receivers all post to the sink, and Prometheus with a generated scrape
config and the generated alert rules. Every process runs in its own session, so it outlives the
``hlthz stack up`` command; the state directory (default ``./.hlthz/stack``) holds the generated
configs, one log and one pid file per process and ``state.json``, which ``stack_down`` and
``stack_status`` read from any other process.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hlthz.alerts import find_project
from hlthz.files import atomic_write
from hlthz.inputs import parse_json, read_limited
from hlthz.procs import (
    LOOPBACK,
    ManagedProcess,
    ProcessGroup,
    free_port,
    hlthz_command,
    http_ok,
    port_open,
    runs_command,
    stop_pid,
)
from hlthz.tools.stack.config import (
    StackError,
    alertmanager_config,
    default_alertmanager_file,
    default_rules_file,
    grafana_datasource,
    grafana_provisioning_dir,
    load_yaml,
    prometheus_config,
    scrape_target,
    thresholds_scrape_interval,
)
from hlthz.tools.stack.services import (
    alertmanager_argv,
    find_binary,
    health_url,
    is_ready,
    prometheus_argv,
)

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_STATE_DIR",
    "DEMO_JOB",
    "StackError",
    "StackOptions",
    "alertmanager_config",
    "default_alertmanager_file",
    "default_rules_file",
    "grafana_provisioning_dir",
    "prometheus_config",
    "read_state",
    "restart_service",
    "scrape_target",
    "stack_down",
    "stack_status",
    "stack_up",
]

DEFAULT_STATE_DIR = Path(".hlthz/stack")
DEMO_JOB = "hlthz-demo-api"
STATE_FILE = "state.json"
# Conventional ports, so bookmarks and muscle memory work; 0 picks a free one.
DEFAULT_PORTS = {"prometheus": 9090, "alertmanager": 9093, "sink": 9095, "api": 8000}
# Start order; stopped in reverse.
SERVICES = ("sink", "api", "alertmanager", "prometheus")


@dataclass(frozen=True)
class StackOptions:
    """How to run the stack. Every path may be relative to the current directory.

    ``target``: base URL (or full metrics URL) of the user's own app; None runs the demo API.
    ``thresholds``: the project file (None: ``$HLTHZ_CONFIG`` or ``./hlthz.yaml`` if there is
    one); its ``scrape_interval`` is the scrape config's unless ``scrape_interval`` overrides
    it, and its ``alerts/generated/`` files are the defaults of ``rules_file`` /
    ``alertmanager_file`` (without a project file: the packaged worked example's).
    ``group_wait`` and friends override Alertmanager's timings everywhere in the route tree
    (drills use seconds; None keeps the generated values).
    """

    state_dir: Path = DEFAULT_STATE_DIR
    target: str | None = None
    job: str | None = None
    profile: str = "after"
    api_args: tuple[str, ...] = ()
    enable_faults: bool = False
    seed_args: tuple[str, ...] = ("--small",)
    rules_file: Path | None = None
    alertmanager_file: Path | None = None
    thresholds: Path | None = None
    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    ready_timeout: float = 60.0


# --- state --------------------------------------------------------------------------------


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The stack's ``state.json``, or None when no stack was started there."""
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return None

    def error(name: str, line: int, message: str) -> StackError:
        return StackError(f"{name}: unreadable stack state ({message}); remove it by hand")

    data = parse_json(
        read_limited(path, max_bytes=16 << 20, what="stack state", error=error),
        source=str(path),
        error=error,
    )
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise StackError(f"{path}: not a stack state file; remove it by hand")
    return data


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(state_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    for name, service in state["services"].items():
        atomic_write(state_dir / f"{name}.pid", f"{service['pid']}\n")


# --- up / down / status -------------------------------------------------------------------


def _pick_port(name: str, ports: dict[str, int]) -> int:
    port = int(ports.get(name, DEFAULT_PORTS[name]))
    if port == 0:
        return free_port()
    if port_open(port):
        raise StackError(
            f"port {port} for {name} is already in use; stop what uses it or pass "
            f"--{name}-port 0 for a free port"
        )
    return port


def _service_record(name: str, proc: ManagedProcess) -> dict[str, Any]:
    return {
        "pid": proc.pid,
        "argv": proc.argv,
        "url": proc.url,
        "health": health_url(name, proc.url),
        "log": str(proc.log_path),
    }


def _start(
    name: str,
    argv: list[str],
    state_dir: Path,
    started: ProcessGroup,
    *,
    url: str,
    timeout: float,
) -> ManagedProcess:
    """Start service ``name`` (a :data:`READY_PATHS` key) in ``started`` and wait until it is
    ready (:func:`is_ready`: its health path, and a path only it serves, answer)."""
    proc = ManagedProcess(
        name,
        argv,
        log_path=state_dir / "logs" / f"{name}.log",
        ready=is_ready(name, url),
        ready_timeout=timeout,
    )
    proc.url = url
    return started.start(proc)


def _seed_demo(state_dir: Path, data_dir: Path, seed_args: Sequence[str], timeout: float) -> None:
    # --reuse: a data set made with the same arguments is kept, anything else is re-seeded.
    seed = ManagedProcess(
        "seed",
        [*hlthz_command(), "api", "seed", "--reuse", "--data-dir", str(data_dir), *seed_args],
        log_path=state_dir / "logs" / "seed.log",
    ).start()
    assert seed.popen is not None
    try:
        code = seed.popen.wait(timeout=max(timeout, 300.0))
    except BaseException:
        seed.stop()
        raise
    if code != 0:
        raise StackError(f"seeding the demo data failed; see {seed.log_path}: {seed.log_tail()}")


def _check_durations(options: StackOptions) -> None:
    """A typo in a timing must fail now, not as Prometheus' or Alertmanager's start-up crash."""
    from hlthz.alerts import parse_duration

    for flag, value in (
        ("--scrape-interval", options.scrape_interval),
        ("evaluation_interval", options.evaluation_interval),
        ("--group-wait", options.group_wait),
        ("--group-interval", options.group_interval),
        ("--repeat-interval", options.repeat_interval),
    ):
        if value is None:
            continue
        try:
            parse_duration(value)
        except ValueError:
            raise StackError(
                f"{flag} {value!r}: not a Prometheus duration; write it like 15s, 5m or 1h"
            ) from None


def _only_service(config_file: Path | None) -> str | None:
    """The job name of a project file with exactly one service (the app ``--target`` is)."""
    if config_file is None:
        return None
    from hlthz.alerts import load_config

    services = load_config(config_file).services
    return services[0].name if len(services) == 1 else None


def stack_up(
    options: StackOptions, *, echo: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Start the stack described by ``options``; return its state (also in ``state.json``).

    Raises :class:`StackError` when a stack already runs in the state directory, a port is
    taken or a binary is missing; whatever was started before the failure is stopped again.
    """
    state_dir = Path(options.state_dir).resolve()
    previous = read_state(state_dir)
    if previous is not None and any(
        runs_command(int(s["pid"]), s["argv"]) for s in previous["services"].values()
    ):
        raise StackError(
            f"a stack is already running from {state_dir}; run `hlthz stack down --dir "
            f"{options.state_dir}` first"
        )
    # Find everything before starting anything: a missing binary fails here, not half-way.
    find_binary("prometheus")
    find_binary("prometheus-alertmanager", "alertmanager")
    # The project's own files when there is a hlthz.yaml (--config, HLTHZ_CONFIG, ./), else
    # the packaged worked example's (the demo API's).
    project = find_project(options.thresholds, required=False)
    generated = project.alerts_dir / "generated" if project else None
    rules_src = Path(
        options.rules_file or (generated / "hlthz.rules.yml" if generated else default_rules_file())
    )
    am_src = Path(
        options.alertmanager_file
        or (generated / "alertmanager.yml" if generated else default_alertmanager_file())
    )
    hint = "run `hlthz alerts generate` or pass --rules/--alertmanager-config"
    load_yaml(rules_src, "alert rules file", hint)
    am_base = load_yaml(am_src, "Alertmanager config", hint)
    try:  # a malformed routing file must fail before anything starts, naming the file
        alertmanager_config(
            am_base,
            f"http://{LOOPBACK}",
            group_wait=options.group_wait,
            group_interval=options.group_interval,
            repeat_interval=options.repeat_interval,
        )
    except StackError as exc:
        raise StackError(f"{am_src}: {exc}") from None
    _check_durations(options)
    config_file = project.config if project else None
    scrape_interval = options.scrape_interval or thresholds_scrape_interval(config_file)
    evaluation_interval = options.evaluation_interval or scrape_interval
    target_url = options.target
    job = options.job or (DEMO_JOB if target_url is None else _only_service(config_file) or "api")
    if target_url is not None:
        scheme, address, path = scrape_target(target_url)
        if not http_ok(f"{scheme}://{address}{path}", timeout=2.0):
            echo(
                f"warning: {target_url} does not answer on {path} yet; Prometheus shows it down "
                "(and APITargetMissing fires) until it does"
            )

    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in (state_dir / STATE_FILE, *state_dir.glob("*.pid")):
        stale.unlink(missing_ok=True)
    (state_dir / "rules").mkdir(exist_ok=True)
    rules = state_dir / "rules" / rules_src.name
    shutil.copyfile(rules_src, rules)

    # With --target the user's app may well listen on the API's default port: not ours to check.
    ports = {
        name: _pick_port(name, options.ports)
        for name in DEFAULT_PORTS
        if not (name == "api" and target_url is not None)
    }
    started = ProcessGroup()
    state: dict[str, Any] = {
        "version": 1,
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "dir": str(state_dir),
        "job": job,
        "target": target_url,
        "services": {},
        "files": {},
    }
    try:
        sink_url = f"http://{LOOPBACK}:{ports['sink']}"
        echo(f"starting the webhook sink on {sink_url}")
        sink = _start(
            "sink",
            [
                sys.executable,
                "-m",
                "hlthz.tools.stack.webhook_sink",
                "--port",
                str(ports["sink"]),
                "--out",
                str(state_dir / "alerts.jsonl"),
            ],
            state_dir,
            started,
            url=sink_url,
            timeout=options.ready_timeout,
        )
        state["services"]["sink"] = _service_record("sink", sink)
        # Saved at once: if this command dies now, `stack down` still finds it.
        _write_state(state_dir, state)

        if target_url is None:
            data_dir = state_dir / "api-data"
            echo(f"seeding the demo data in {data_dir}")
            _seed_demo(state_dir, data_dir, options.seed_args, options.ready_timeout)
            api_url = f"http://{LOOPBACK}:{ports['api']}"
            echo(f"starting the demo API ({options.profile}) on {api_url}")
            argv = [
                *hlthz_command(),
                "api",
                "serve",
                "--profile",
                options.profile,
                "--host",
                LOOPBACK,
                "--port",
                str(ports["api"]),
                "--data-dir",
                str(data_dir),
                *(["--enable-faults"] if options.enable_faults else []),
                *options.api_args,
            ]
            api = _start(
                "api",
                argv,
                state_dir,
                started,
                url=api_url,
                timeout=options.ready_timeout,
            )
            state["services"]["api"] = _service_record("api", api)
            _write_state(state_dir, state)
            target_url = api_url

        am_config = alertmanager_config(
            am_base,
            sink_url,
            group_wait=options.group_wait,
            group_interval=options.group_interval,
            repeat_interval=options.repeat_interval,
        )
        am_file = state_dir / "alertmanager.yml"
        atomic_write(am_file, yaml.safe_dump(am_config, sort_keys=False))
        am_url = f"http://{LOOPBACK}:{ports['alertmanager']}"
        echo(f"starting Alertmanager on {am_url}")
        (state_dir / "alertmanager-data").mkdir(exist_ok=True)
        alertmanager = _start(
            "alertmanager",
            alertmanager_argv(am_file, state_dir / "alertmanager-data", ports["alertmanager"]),
            state_dir,
            started,
            url=am_url,
            timeout=options.ready_timeout,
        )
        state["services"]["alertmanager"] = _service_record("alertmanager", alertmanager)
        _write_state(state_dir, state)

        prom_file = state_dir / "prometheus.yml"
        prom_config = prometheus_config(
            job=job,
            target_url=target_url,
            alertmanager=f"{LOOPBACK}:{ports['alertmanager']}",
            rule_files=[rules],
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
        )
        atomic_write(prom_file, yaml.safe_dump(prom_config, sort_keys=False))
        prom_url = f"http://{LOOPBACK}:{ports['prometheus']}"
        echo(f"starting Prometheus on {prom_url}")
        (state_dir / "prometheus-data").mkdir(exist_ok=True)
        prometheus = _start(
            "prometheus",
            prometheus_argv(prom_file, state_dir / "prometheus-data", ports["prometheus"]),
            state_dir,
            started,
            url=prom_url,
            timeout=options.ready_timeout,
        )
        state["services"]["prometheus"] = _service_record("prometheus", prometheus)
        _write_state(state_dir, state)
    except BaseException:
        started.stop_all()
        for leftover in (state_dir / STATE_FILE, *state_dir.glob("*.pid")):
            leftover.unlink(missing_ok=True)
        raise

    datasource = state_dir / "grafana" / "datasource.yml"
    atomic_write(
        datasource,
        yaml.safe_dump(
            grafana_datasource(state["services"]["prometheus"]["url"], scrape_interval),
            sort_keys=False,
        ),
    )
    state["target"] = target_url
    state["files"] = {
        "prometheus_config": str(prom_file),
        "rules": str(rules),
        "alertmanager_config": str(am_file),
        "alerts_received": str(state_dir / "alerts.jsonl"),
        "grafana_datasource": str(datasource),
        "grafana_provisioning": str(
            project.dashboards_dir / "provisioning" if project else grafana_provisioning_dir()
        ),
        "logs": str(state_dir / "logs"),
    }
    _write_state(state_dir, state)
    return state


def stack_down(state_dir: Path = DEFAULT_STATE_DIR, *, timeout: float = 10.0) -> list[str]:
    """Stop every process of the stack in ``state_dir``; return the names that were running.

    Logs, configs and data stay for inspection; the pid files and ``state.json`` go.
    """
    state_dir = Path(state_dir).resolve()
    state = read_state(state_dir)
    if state is None:
        return []
    stopped = []
    for name in reversed(SERVICES):
        service = state["services"].get(name)
        if service is None:
            continue
        if stop_pid(int(service["pid"]), service["argv"], timeout):
            stopped.append(name)
        (state_dir / f"{name}.pid").unlink(missing_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return stopped


def stack_status(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any] | None:
    """The state with, for each service, ``running`` (pid alive) and ``healthy`` (URL answers)."""
    state = read_state(Path(state_dir).resolve())
    if state is None:
        return None
    for service in state["services"].values():
        service["running"] = runs_command(int(service["pid"]), service["argv"])
        service["healthy"] = service["running"] and http_ok(service["health"])
    return state


def restart_service(state_dir: Path, name: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Start service ``name`` again with the argv it had (after a crash or a drill killed it)."""
    state_dir = Path(state_dir).resolve()
    state = read_state(state_dir)
    if state is None or name not in state["services"]:
        raise StackError(f"no {name} in the stack at {state_dir}; run `hlthz stack up` first")
    service = state["services"][name]
    stop_pid(int(service["pid"]), service["argv"], 10.0)
    proc = _start(
        name,
        list(service["argv"]),
        state_dir,
        ProcessGroup(),
        url=service["url"],
        timeout=timeout,
    )
    state["services"][name] = _service_record(name, proc)
    _write_state(state_dir, state)
    return state
