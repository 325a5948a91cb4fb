"""Run :mod:`tests.fuzz.corpus` cases as ``hlthz`` subprocesses and classify how each ended.

Each case runs in its own folder under an address-space limit (``RLIMIT_AS``) and a timeout.
Outcomes: ``exit2`` (one stderr line ``hlthz: error: ...``), ``accepted`` (exit 0), and the
failures ``traceback``, ``hang`` (timeout), ``oom`` (MemoryError or killed), ``messy`` (exit 2
but not exactly one ``hlthz: error:`` line, or another exit code).

``python -m tests.fuzz.runner [--all | --sample] [--area A] [--owner gate] [--jobs 2]`` prints
a table of outcomes per area and every failing case.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.fuzz.corpus import Case, all_cases, sample

MEMORY_LIMIT = 1 << 30  # bytes of address space per command
TIMEOUT = 60.0  # seconds per command
OK_OUTCOMES = ("exit2", "accepted")


@dataclass(frozen=True)
class Outcome:
    case: Case
    kind: str
    code: int | None
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.kind in OK_OUTCOMES

    def describe(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        last = lines[-1][:200] if lines else ""
        return f"{self.kind:9} rc={self.code} {self.seconds:5.1f}s {self.case.id}: {last}"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def classify(code: int | None, stderr: str) -> str:
    """The outcome class of a finished command (``code`` None: it timed out)."""
    if code is None:
        return "hang"
    if "MemoryError" in stderr or code in (-9, 137):
        return "oom"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if code == 0:
        return "accepted"
    lines = [line for line in stderr.splitlines() if line.strip()]
    if code == 2 and len(lines) == 1 and lines[0].startswith("hlthz: error: "):
        return "exit2"
    return "messy"


def run_case(case: Case, *, timeout: float = TIMEOUT, python: str = sys.executable) -> Outcome:
    """Write the case's files into a fresh folder and run its command there."""
    with tempfile.TemporaryDirectory(prefix="hlthz-fuzz-") as tmp:
        folder = Path(tmp)
        for name, body in case.materialize():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        argv = [python, "-m", "hlthz", *(arg.replace("{d}", tmp) for arg in case.argv)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HLTHZ_")}
        env["HOME"] = tmp
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                preexec_fn=_limit_memory,
            )
        except OSError as exc:  # the command line itself is refused (too long)
            return Outcome(case, "unrunnable", None, str(exc), 0.0)
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode("utf-8", "replace") if exc.stderr else ""
            return Outcome(case, "hang", None, err, time.monotonic() - started)
        stderr = done.stderr.decode("utf-8", "replace")
        return Outcome(
            case,
            classify(done.returncode, stderr),
            done.returncode,
            stderr,
            time.monotonic() - started,
        )


def run_cases(
    cases: Iterable[Case], *, jobs: int = 2, timeout: float = TIMEOUT, log: IO[str] | None = None
) -> list[Outcome]:
    """Every case, ``jobs`` at a time, in the cases' order; each outcome also goes to ``log``
    as it comes (one line), so a long run's partial results survive."""

    def one(case: Case) -> Outcome:
        outcome = run_case(case, timeout=timeout)
        if log is not None:
            log.write(outcome.describe() + "\n")
            log.flush()
        return outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, cases))


def table(outcomes: list[Outcome]) -> str:
    """Outcome counts per area, one row each, and a total."""
    kinds = ("exit2", "accepted", "traceback", "hang", "oom", "messy", "unrunnable")
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for outcome in outcomes:
        counts[outcome.case.area][outcome.kind] += 1
        counts["TOTAL"][outcome.kind] += 1
    rows = [f"{'area':18} {'tried':>6} " + " ".join(f"{k:>9}" for k in kinds)]
    for area in [*sorted(a for a in counts if a != "TOTAL"), "TOTAL"]:
        c = counts[area]
        rows.append(f"{area:18} {sum(c.values()):6} " + " ".join(f"{c[k]:9}" for k in kinds))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also the heavy cases")
    parser.add_argument("--heavy", action="store_true", help="only the heavy cases")
    parser.add_argument("--sample", action="store_true", help="only the sample make test runs")
    parser.add_argument("--per-area", type=int, help="a wider sample: N cases of each area")
    parser.add_argument("--area", action="append", help="only these areas")
    parser.add_argument("--owner", choices=("hostile", "gate", "any"), default="any")
    parser.add_argument("-k", dest="match", help="only case ids containing this")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, help="only the first N cases chosen")
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    parser.add_argument("--log", type=argparse.FileType("w"), help="every outcome, as it comes")
    args = parser.parse_args(argv)
    cases = all_cases()
    if args.sample or args.per_area:
        cases = sample(cases, args.per_area or 10)
    elif args.heavy:
        cases = [c for c in cases if c.heavy]
    elif not args.all:
        cases = [c for c in cases if not c.heavy]
    if args.area:
        cases = [c for c in cases if c.area in args.area]
    if args.owner != "any":
        cases = [c for c in cases if c.owner == args.owner]
    if args.match:
        cases = [c for c in cases if args.match in c.id]
    if args.limit:
        cases = cases[: args.limit]
    started = time.monotonic()
    outcomes = run_cases(cases, jobs=args.jobs, timeout=args.timeout, log=args.log)
    for outcome in outcomes:
        if not outcome.ok:
            print(outcome.describe())
    print(table(outcomes))
    load = os.getloadavg()
    print(
        f"{len(outcomes)} cases in {time.monotonic() - started:.0f} s, {args.jobs} at a time; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
