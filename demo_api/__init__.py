"""hlthz.demo_api: a demo e-commerce API that reproduces a slow "before" and a fast "after".

Every optimization of the story is a switch (:data:`OPTIMIZATIONS`); a profile sets them all.
``create_app(Settings.for_profile("after"))`` builds the FastAPI app; ``seed(url)`` creates the
deterministic data set. The CLI is ``hlthz api serve|seed|worker``; see docs/demo_api.md.
"""

from typing import TYPE_CHECKING, Any

from hlthz.demo_api.settings import OPTIMIZATIONS, PROFILES, Settings, parse_opt, profile_opts
from hlthz.errors import ConfigError, DatabaseError, ServiceUnavailable
from hlthz.extras import missing, require

# The app, the seeder and the servers need the 'demo' extra (FastAPI, SQLAlchemy, ...). Without
# it the settings still import (the CLI's options and help) and those names raise MissingExtra.
_NEEDS = ("fastapi", "sqlalchemy", "cachetools")
if not missing(*_NEEDS):
    from hlthz.demo_api.app import create_app
    from hlthz.demo_api.seed import SeedResult, seed
    from hlthz.demo_api.server import run_worker, serve
elif not TYPE_CHECKING:  # hidden from mypy, which would accept any name given a __getattr__

    def __getattr__(name: str) -> Any:
        if name in ("create_app", "SeedResult", "seed", "run_worker", "serve"):
            require("demo", *_NEEDS, what=f"hlthz.demo_api.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OPTIMIZATIONS",
    "PROFILES",
    "ConfigError",
    "DatabaseError",
    "SeedResult",
    "ServiceUnavailable",
    "Settings",
    "create_app",
    "parse_opt",
    "profile_opts",
    "run_worker",
    "seed",
    "serve",
]
