"""Child processes that die with their parent.

The replay engine's process, and the local workers it starts, must not outlive the process
that started them: a ``hlthz replay run`` killed with SIGKILL would otherwise leave an engine
sending traffic (``--loop``) with nobody to stop it. On Linux the kernel sends a signal of our
choice when the parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and as a second line,
the engine polls :func:`os.getppid`. Either way the child first checks that its parent is still
the process that started it: a parent that died before the child asked would otherwise go
unnoticed (the child has already been handed to init or a subreaper).

Imports nothing but the standard library, so it is safe before gevent patches anything.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["die_with_parent", "parent_alive"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int) -> bool:
    """Ask for ``signum`` when this process's parent dies; return whether ``parent`` (the pid
    that started this process) is still its parent. False means it is already gone: exit.

    The kernel's notice is tied to the parent *thread* that started this process: a caller
    that starts the child from a thread must outlive the child in that thread (``run_replay``
    waits for it there).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the caller's polling still notices
            pass
    return parent_alive(parent)


def parent_alive(parent: int) -> bool:
    """True while ``parent`` is still this process's parent."""
    return os.getppid() == parent
