"""``replay import`` and ``replay export`` as library calls: read, select, redact, write.

Inputs are one or more files or glob patterns, merged in send-time order
(:mod:`hlthz.replay.capture.inputs`). Redaction happens between reading and writing, so a secret
in a GoReplay file, a HAR or a log never reaches the capture written by :func:`import_traffic`.
Outputs appear whole or not at all: they are written under temporary names and renamed at the
end, so a malformed input, a full disk or an interrupt leaves no partial file, and a write
error is one :class:`~hlthz.errors.ReplayError` line naming the output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hlthz.errors import ReplayError
from hlthz.replay.capture.format import CaptureRecord, CaptureWriter, ReadStats
from hlthz.replay.capture.formats.gor import export_gor
from hlthz.replay.capture.inputs import InputFile, expand_inputs, merged_records
from hlthz.replay.capture.redact import RedactionStats, Redactor
from hlthz.replay.capture.rewrite import Rewrite
from hlthz.replay.capture.select import Selection, SelectionStats
from hlthz.replay.capture.sources import detect_format

__all__ = ["ConversionResult", "export_traffic", "import_traffic"]

Inputs = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass
class ConversionResult:
    """What an import or export did: ``source_format`` (``"gor"``, or ``"gor, nginx"`` for
    several files), the counts of :class:`ReadStats`, what selection and redaction did, the
    files read (``inputs``, each with its own stats and detail) and written (``outputs``)."""

    source_format: str
    records: int = 0
    invalid: int = 0
    truncated: int = 0
    not_requests: int = 0
    out_of_order: int = 0
    read: int = 0
    rewritten: int = 0
    selection: SelectionStats = field(default_factory=SelectionStats)
    redactions: RedactionStats = field(default_factory=RedactionStats)
    inputs: list[InputFile] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def details(self) -> list[str]:
        """How each file was read, where it says more than its format (nginx log formats)."""
        return [f"{i.path.name}: {i.stats.detail}" for i in self.inputs if i.stats.detail]


def _as_list(src: Inputs) -> list[str | os.PathLike[str]]:
    if isinstance(src, str | os.PathLike):
        return [src]
    return list(src)


def _check_output(paths: list[Path], out: str | os.PathLike[str]) -> None:
    target = Path(out).resolve()
    if any(path.resolve() == target for path in paths):
        raise ReplayError(f"-o {out}: the output would overwrite the input; choose another path")
    if not target.parent.is_dir():
        raise ReplayError(f"-o {out}: no such directory {target.parent}")


def _formats(files: list[InputFile]) -> str:
    return ", ".join(dict.fromkeys(f.format for f in files)) or "none"


def _write_error(out: str | os.PathLike[str], exc: OSError) -> ReplayError:
    return ReplayError(f"-o {out}: cannot write ({exc.strerror or exc})")


def import_traffic(
    src: Inputs,
    out: str | os.PathLike[str],
    *,
    format: str = "auto",
    log_format: str | None = None,
    redactor: Redactor | None = None,
    selection: Selection | None = None,
    rewrite: Rewrite | None = None,
    skip_invalid: bool = False,
    max_bytes: int | None = None,
) -> ConversionResult:
    """Convert ``src`` (gor, HAR, nginx logs or hlthz captures: one path, a glob pattern, or a
    list of them) into one redacted v1 capture ``out``, in send-time order.

    ``selection`` filters by route and method and samples by session before anything is
    redacted or written; ``rewrite`` then rewrites path, query and headers (before
    redaction, so a rule cannot bring a secret past it). Raises :class:`ReplayError` (nothing
    written) when no request is left, when ``out`` would overwrite an input, or when ``out``
    cannot be written.
    """
    paths = expand_inputs(_as_list(src))
    _check_output(paths, out)
    redactor = redactor if redactor is not None else Redactor()
    selection = selection if selection is not None else Selection()
    stats = ReadStats()
    files: list[InputFile] = []
    records = merged_records(
        paths,
        format=format,
        log_format=log_format,
        skip_invalid=skip_invalid,
        stats=stats,
        files=files,
    )
    names = ", ".join(p.name for p in paths[:3]) + (
        f" (+{len(paths) - 3})" if len(paths) > 3 else ""
    )
    result = ConversionResult(source_format=format)
    try:
        writer = CaptureWriter(
            out,
            source=f"import:{format if format != 'auto' else _formats_of(paths)}:{names}",
            header={"redaction": redactor.describe()},
            max_bytes=max_bytes,
            atomic=True,
        )
    except OSError as exc:
        raise ReplayError(f"-o {out}: cannot create ({exc.strerror or exc})") from None
    written = 0
    try:
        with writer:
            for record in records:
                if not selection.keep(record):
                    continue
                if selection.sample_key and record.session is None:
                    value = selection.key_value(record)
                    if value:
                        record.session = redactor.session_id(value)
                if rewrite is not None:
                    record = rewrite.apply(record)
                redacted, found = redactor.redact(record)
                result.redactions.add(found)
                writer.write(redacted)
                written += 1
            if written == 0:
                raise _NothingToWrite()
    except _NothingToWrite:
        pass
    except OSError as exc:
        raise _write_error(out, exc) from None
    result.source_format = _formats(files)
    if written == 0:
        # An empty capture would replay as a silent no-op: say what went wrong instead.
        left_out = selection.stats.filtered + selection.stats.sampled_out
        why = (
            f"all {left_out} were left out by --route/--method/--sample"
            if left_out
            else f"{stats.invalid} invalid, {stats.truncated} truncated, "
            f"{stats.not_requests} not requests; check --format and --log-format"
        )
        raise ReplayError(
            f"{', '.join(map(str, paths))}: no {result.source_format} requests to import ({why})"
        )
    result.records = written
    result.read = stats.records
    result.invalid = stats.invalid
    result.truncated = stats.truncated
    result.not_requests = stats.not_requests
    result.out_of_order = stats.out_of_order
    result.selection = selection.stats
    result.rewritten = rewrite.stats.rewritten if rewrite is not None else 0
    result.inputs = files
    result.outputs = list(writer.paths)
    return result


class _NothingToWrite(Exception):
    """Every record was filtered out or none was read: leave no output behind."""


def _formats_of(paths: list[Path]) -> str:
    return "+".join(dict.fromkeys(detect_format(p) for p in paths))


def export_traffic(
    src: Inputs,
    out: str | os.PathLike[str],
    *,
    format: str = "gor",
    skip_invalid: bool = False,
) -> ConversionResult:
    """Write the capture(s) ``src`` in another tool's format (today: GoReplay ``gor``), merged
    in send-time order when several are given."""
    if format != "gor":
        raise ReplayError(f"--format {format!r}: export supports 'gor'")
    paths = expand_inputs(_as_list(src))  # before creating ``out``: a missing input leaves nothing
    _check_output(paths, out)
    stats = ReadStats()
    files: list[InputFile] = []
    records: Iterator[CaptureRecord] = merged_records(
        paths, skip_invalid=skip_invalid, stats=stats, files=files
    )
    try:
        count = export_gor(records, out)
    except OSError as exc:
        raise _write_error(out, exc) from None
    return ConversionResult(
        source_format=_formats(files),
        records=count,
        read=stats.records,
        invalid=stats.invalid,
        truncated=stats.truncated,
        not_requests=stats.not_requests,
        out_of_order=stats.out_of_order,
        inputs=files,
        outputs=[Path(out)],
    )
