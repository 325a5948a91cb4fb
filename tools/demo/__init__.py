"""hlthz.tools.demo: the before/after story, end to end.

The defaults live here, not in :mod:`hlthz.tools.demo.story`, so ``hlthz demo --help`` can show
them without the 'demo' extra (the story imports rich, httpx, ...).
"""

from pathlib import Path

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_OUT"]

DEFAULT_OUT = Path("reports/demo")
#: Seeded data sets are kept here between runs: seeding the full set takes a while.
DEFAULT_DATA_DIR = Path(".hlthz/demo")
