"""hlthz.demo_api: a demo e-commerce API that reproduces a slow "before" and a fast "after".

Every optimization of the story is a switch (:data:`OPTIMIZATIONS`); a profile sets them all.
``create_app(Settings.for_profile("after"))`` builds the FastAPI app; ``seed(url)`` creates the
deterministic data set. The CLI is ``hlthz api serve|seed|worker``; see docs/demo_api.md.
"""

from hlthz.demo_api.app import create_app
from hlthz.demo_api.seed import SeedResult, seed
from hlthz.demo_api.server import run_worker, serve
from hlthz.demo_api.settings import OPTIMIZATIONS, PROFILES, Settings, parse_opt, profile_opts
from hlthz.errors import ConfigError, DatabaseError, ServiceUnavailable

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
