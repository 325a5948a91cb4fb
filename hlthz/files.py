"""Writing files so that nobody ever reads half of one.

Every file HLTHZ writes for a user (reports, generated rules and dashboards, stack state,
summaries) goes through :func:`atomic_write`: the bytes go to a temporary file in the same
folder, are flushed to disk, and replace the target in one ``rename``. A reader (Prometheus
reloading rules, a CI job picking up a report, a second ``hlthz`` process) sees the old file or
the new one; a crash or a full disk leaves the old file and no stray temporary.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from hlthz.errors import UsageError

__all__ = ["atomic_write", "ensure_parent"]


def atomic_write(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    mode: int = 0o644,
    what: str | None = None,
) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one step.

    ``mode`` is the new file's permission (``0o600`` for anything that may hold a secret); the
    folder is created if needed. Without ``what`` an :class:`OSError` propagates; with it (an
    option or field name such as ``"--report"``) it becomes a one-line
    :class:`~hlthz.errors.UsageError`: ``--report out/r.json: cannot write (No space left on
    device)``.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        if what is None:
            raise
        raise UsageError(f"{what} {target}: cannot write ({exc.strerror or exc})") from None


def ensure_parent(path: str | os.PathLike[str], *, what: str) -> None:
    """Create ``path``'s folder now, before long work whose result goes there; a folder that
    cannot be made is a one-line :class:`~hlthz.errors.UsageError` naming ``what``."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"{what} {path}: cannot create its directory ({exc.strerror or exc})"
        ) from None
