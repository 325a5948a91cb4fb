"""How one demo API instance is configured: a profile, per-optimization switches and back ends.

A profile (``before`` or ``after``) is only a starting point: every optimization is a separate
switch so a user can turn one on in the slow profile (or off in the fast one) and measure that
step alone. :func:`parse_opt` reads the ``--opt name=on|off`` syntax of ``hlthz api serve``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hlthz.errors import ConfigError

#: Every optimization, in the order the story tells them, with a one-line description.
OPTIMIZATIONS: dict[str, str] = {
    "join_queries": "product listing in one JOIN + GROUP BY query instead of 1 + 2N queries",
    "indexes": "indexes on products(category_id, created_at), reviews, inventory and orders",
    "pool": "connection pool of 50 (10 kept warm, validated on checkout) instead of 10",
    "cache": "cache product pages and details with a TTL, invalidated on update",
    "background_jobs": "order e-mail, inventory and analytics as queued jobs, not inline",
    "parallel_upstream": "the dashboard's three upstream calls run concurrently",
    "lean_responses": "listing and detail return lean fields plus meta, not full objects",
    "compression": "gzip responses larger than 1 KB",
}

PROFILES = ("before", "after")

DEFAULT_DATA_DIR = Path(".hlthz/data")
SQLITE_FILE = "demo.sqlite3"
DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_ON = {"on", "true", "1", "yes"}
_OFF = {"off", "false", "0", "no"}


def profile_opts(profile: str) -> dict[str, bool]:
    """The switches of a profile: ``before`` has every optimization off, ``after`` all on."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use one of: {', '.join(PROFILES)}")
    return dict.fromkeys(OPTIMIZATIONS, profile == "after")


def parse_opt(text: str) -> tuple[str, bool]:
    """Parse ``name=on|off`` (also true/false, 1/0, yes/no) into ``(name, enabled)``."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise ConfigError(f"--opt {text!r}: expected NAME=on|off, e.g. --opt cache=on")
    if name not in OPTIMIZATIONS:
        raise ConfigError(
            f"--opt {text!r}: unknown optimization {name!r}; known: {', '.join(OPTIMIZATIONS)}"
        )
    value = value.strip().lower()
    if value in _ON:
        return name, True
    if value in _OFF:
        return name, False
    raise ConfigError(f"--opt {text!r}: value must be on or off, not {value!r}")


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Unparseable: drop everything between the scheme and the last '@', if any.
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rsplit('@', 1)[1]}" if "@" in rest else url


@dataclass(frozen=True)
class Settings:
    """Everything one app instance needs. Build it with :meth:`for_profile`.

    Latencies are in seconds. ``db_url`` None means the SQLite file ``demo.sqlite3`` in
    ``data_dir``; ``cache_url`` None means the in-process cache and the in-process job worker,
    a ``redis://`` URL means the Redis cache and the RQ queue (run ``hlthz api worker``).
    """

    profile: str = "before"
    opts: Mapping[str, bool] = field(default_factory=lambda: profile_opts("before"))
    db_url: str | None = None
    cache_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    enable_faults: bool = False
    record: Path | None = None
    #: Simulated side work of an order: SMTP hand-off, inventory service, analytics.
    smtp_delay: float = 0.7
    inventory_delay: float = 0.05
    analytics_delay: float = 0.05
    #: Simulated upstream service: mean latency of its profile, orders, preferences calls.
    upstream_latency: Mapping[str, float] = field(
        default_factory=lambda: {"profile": 0.06, "orders": 0.08, "preferences": 0.05}
    )
    cache_ttl: float = 60.0
    #: How long a request waits for a pooled connection before it gets a 503.
    pool_timeout: float = 2.0
    #: A networked database that does not answer within this long is down: the probe before
    #: each new connection gives up then (libpq alone never waits less than 2 s), and an
    #: operation in flight this long makes the freeze watch ask the server whether it runs
    #: (hlthz.demo_api.liveness).
    connect_timeout: float = 0.5
    job_retries: int = 3
    job_retry_interval: float = 0.2
    n_plus_one_threshold: int = 5

    @classmethod
    def for_profile(
        cls,
        profile: str = "before",
        opts: Iterable[str] | Mapping[str, bool] = (),
        **kwargs: object,
    ) -> Settings:
        """A profile's settings, with ``opts`` (``"name=on"`` strings or a mapping) on top."""
        switches = profile_opts(profile)
        pairs = opts.items() if isinstance(opts, Mapping) else (parse_opt(o) for o in opts)
        for name, enabled in pairs:
            if name not in OPTIMIZATIONS:
                raise ConfigError(
                    f"unknown optimization {name!r}; known: {', '.join(OPTIMIZATIONS)}"
                )
            switches[name] = bool(enabled)
        return cls(profile=profile, opts=switches, **kwargs)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.cache_url is not None and not self.cache_url.startswith(_REDIS_SCHEMES):
            raise ConfigError(
                f"--cache {mask_password(self.cache_url)!r}: not a Redis URL; use "
                "redis://HOST:PORT/N (or rediss://, unix://), or leave it out for the in-process "
                "cache"
            )

    def on(self, name: str) -> bool:
        """True when optimization ``name`` is enabled."""
        if name not in OPTIMIZATIONS:
            raise KeyError(name)
        return bool(self.opts.get(name, False))

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL actually used (the SQLite file in ``data_dir`` by default)."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(Path(self.data_dir) / SQLITE_FILE).resolve()}"

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
