"""Real services on loopback: Prometheus, Alertmanager, PostgreSQL, Redis.

Each ``start_*`` function returns a started :class:`~hlthz.procs.ManagedProcess` (use it
as a context manager) listening on 127.0.0.1 only, with its data and log under ``workdir``.
Binaries come from PATH (Debian packages: prometheus, prometheus-alertmanager, redis-server,
postgresql); a missing one is a :class:`ServiceError` that says which package to install.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from hlthz.errors import ServiceError
from hlthz.procs import LOOPBACK, ManagedProcess, free_port, http_ok, port_open

# binary -> Debian package that provides it
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
    "nginx": "nginx-light",
    "chromium": "chromium",
    "initdb": "postgresql",
    "postgres": "postgresql",
    "pg_isready": "postgresql",
}


def find_binary(*names: str) -> str:
    """Return the path of the first of ``names`` found, or raise naming the package."""
    for name in names:
        if name in ("initdb", "postgres", "pg_isready"):
            hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
            if hits:
                return hits[-1]
        found = shutil.which(name)
        if found:
            return found
    package = PACKAGES.get(names[0], names[0])
    raise ServiceError(
        f"{names[0]} not found on PATH; install it (Debian: apt-get install {package}, "
        "or run scripts/install-system-deps.sh as root)"
    )


def prometheus_argv(config_file: Path, data_dir: Path, port: int) -> list[str]:
    """Prometheus on loopback ``port`` with ``config_file``, TSDB in ``data_dir``, reloadable."""
    return [
        find_binary("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--web.enable-lifecycle",
    ]


#: Per service: the path that answers 2xx once it is ready, and a path only that kind of
#: service serves. A port picked free can be taken by another program before ours binds it,
#: and that program's ``/-/ready`` must not pass for ours. ``sink`` is the stack's webhook sink
#: (:mod:`hlthz.tools.stack.webhook_sink`), ``api`` the demo API.
READY_PATHS: dict[str, tuple[str, str | None]] = {
    "prometheus": ("/-/ready", "/api/v1/status/buildinfo"),
    "alertmanager": ("/-/ready", "/api/v2/status"),
    "sink": ("/-/healthy", "/notifications"),
    "api": ("/health", None),
}


def health_url(service: str, url: str) -> str:
    """The URL that answers 2xx while ``service`` (a :data:`READY_PATHS` key) at ``url`` is
    up: what ``stack status`` polls."""
    return url + READY_PATHS[service][0]


def is_ready(service: str, url: str) -> Callable[[], bool]:
    """A readiness check of ``service`` at ``url``: its health path and its own path answer."""
    health, own = READY_PATHS[service]
    return lambda: http_ok(url + health) and (own is None or http_ok(url + own))


def alertmanager_argv(config_file: Path, data_dir: Path, port: int) -> list[str]:
    """Alertmanager on loopback ``port`` with ``config_file``, clustering off."""
    return [
        find_binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config_file}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--cluster.listen-address=",
    ]


def start_prometheus(
    config_file: Path,
    workdir: Path,
    *,
    port: int | None = None,
    extra_args: list[str] | None = None,
) -> ManagedProcess:
    """Start Prometheus with ``config_file``; ``proc.url`` style: ``http://127.0.0.1:PORT``."""
    port = port or free_port()
    data = workdir / "prometheus-data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        *prometheus_argv(config_file, data, port),
        "--web.enable-admin-api",
        *(extra_args or []),
    ]
    url = f"http://{LOOPBACK}:{port}"
    proc = ManagedProcess(
        "prometheus",
        argv,
        log_path=workdir / "prometheus.log",
        ready=is_ready("prometheus", url),
    )
    proc.url = url
    return proc.start()


def backfill_openmetrics(source: Path, data_dir: Path, *, timeout: float = 1800) -> None:
    """Turn OpenMetrics text (samples with timestamps, ``# EOF`` at the end) into TSDB blocks in
    ``data_dir`` with ``promtool tsdb create-blocks-from openmetrics``: a history a Prometheus
    started on ``data_dir`` serves. Raises :class:`ServiceError` with promtool's message."""
    done = subprocess.run(
        [
            find_binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(source),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise ServiceError(f"promtool could not backfill {source}: {done.stderr.strip()[-500:]}")


def start_alertmanager(
    config_file: Path, workdir: Path, *, port: int | None = None
) -> ManagedProcess:
    """Start Alertmanager with ``config_file``, clustering off, on loopback."""
    port = port or free_port()
    data = workdir / "alertmanager-data"
    data.mkdir(parents=True, exist_ok=True)
    argv = alertmanager_argv(config_file, data, port)
    url = f"http://{LOOPBACK}:{port}"
    proc = ManagedProcess(
        "alertmanager",
        argv,
        log_path=workdir / "alertmanager.log",
        ready=is_ready("alertmanager", url),
    )
    proc.url = url
    return proc.start()


def _redis_ping(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def start_redis(workdir: Path, *, port: int | None = None) -> ManagedProcess:
    """Start a throw-away Redis (no persistence); ``proc.url`` is ``redis://127.0.0.1:PORT/0``."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--protected-mode",
        "yes",
    ]
    proc = ManagedProcess(
        "redis", argv, log_path=workdir / "redis.log", ready=lambda: _redis_ping(port)
    )
    proc.url = f"redis://{LOOPBACK}:{port}/0"
    return proc.start()


def start_postgres(workdir: Path, *, port: int | None = None) -> ManagedProcess:
    """Initialise and start a throw-away PostgreSQL cluster (trust auth, fsync off).

    PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres``
    user that the Debian package creates. ``proc.url`` is ``postgresql://postgres@127.0.0.1:PORT/postgres``.
    """
    port = port or free_port()
    initdb = find_binary("initdb")
    postgres = find_binary("postgres")
    data = workdir / "pgdata"
    workdir.mkdir(parents=True, exist_ok=True)
    user: str | None = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pw = pwd.getpwnam(user)
        except KeyError as exc:
            raise ServiceError(
                "user 'postgres' is missing; install the postgresql package"
            ) from exc
        os.chmod(workdir, 0o755)
        for path in (workdir, *workdir.parents):
            # The postgres user must be able to traverse to its data directory.
            if path == Path("/"):
                break
            mode = path.stat().st_mode
            if not mode & 0o001:
                os.chmod(path, mode | 0o001)
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
    # initdb's bootstrap child has been seen to abort once on a heavily loaded machine: a
    # fresh data directory and a second try is what a person would do.
    attempts = 3
    for attempt in range(1, attempts + 1):
        if (data / "PG_VERSION").exists():
            break
        shutil.rmtree(data, ignore_errors=True)
        init = ManagedProcess(
            "initdb",
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            log_path=workdir / "initdb.log",
            cwd=workdir,
            user=user,
        ).start()
        assert init.popen is not None
        if init.popen.wait(timeout=120) == 0:
            break
        if attempt == attempts:
            raise ServiceError(f"initdb failed; see {init.log_path}: {init.log_tail()}")
    argv = [
        postgres,
        "-D",
        str(data),
        "-k",
        str(workdir),
        "-h",
        LOOPBACK,
        "-p",
        str(port),
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    isready = find_binary("pg_isready")

    def accepting() -> bool:
        # The port opens before the server takes connections ("the database system is
        # starting up"): ready is what pg_isready says, once the port is open.
        if not port_open(port):
            return False
        check = [isready, "-q", "-h", LOOPBACK, "-p", str(port), "-t", "2"]
        return subprocess.run(check, stdin=subprocess.DEVNULL, check=False).returncode == 0

    proc = ManagedProcess(
        "postgres",
        argv,
        log_path=workdir / "postgres.log",
        ready=accepting,
        user=user,
    )
    proc.url = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
    return proc.start()
