"""Read nginx/Apache access logs as capture records: ``combined`` or a custom nginx ``log_format``.

Give the ``log_format`` string exactly as in ``nginx.conf`` (without the name), for example::

    '$remote_addr [$time_local] "$request" $status $request_time $msec "$http_user_agent"'

Each ``$variable`` becomes a field. What the importer uses:

- the request: ``$request`` (``GET /p?q HTTP/1.1``), or ``$request_method`` with
  ``$request_uri`` (or ``$uri`` and ``$args``);
- the time: ``$msec`` (seconds since the epoch, ms precision), else ``$time_iso8601`` or
  ``$time_local``. nginx logs when the response ends, so with ``$request_time`` the send time
  is the log time minus the request time;
- ``$status`` and ``$request_time`` (or ``$upstream_response_time``) for the original status
  and duration; ``$http_NAME`` variables, ``$host`` and ``$content_type`` become request
  headers; ``$request_body`` the body (nginx escapes it as ``\\xHH``).

Logs carry no bodies unless ``$request_body`` is logged: such records get ``body_unknown`` when
the method usually has one, so replay can tell.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterator
from pathlib import Path

from hlthz.errors import ReplayError
from hlthz.net import request_target
from hlthz.replay.capture.format import CaptureRecord, ReadStats, iter_file_lines, reject_line

__all__ = ["COMBINED", "compile_log_format", "iter_nginx"]


COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
_VAR = re.compile(r"\$(\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)")
_ESCAPE = re.compile(rb"\\x([0-9A-Fa-f]{2})")
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def compile_log_format(log_format: str) -> re.Pattern[str]:
    """A regex with one named group per ``$variable`` of an nginx ``log_format``."""
    pattern = ["^"]
    seen: set[str] = set()
    pos = 0
    for match in _VAR.finditer(log_format):
        literal = log_format[pos : match.start()]
        pattern.append(re.escape(literal))
        var = match.group(1).strip("{}")
        after = log_format[match.end() : match.end() + 1]
        before = literal[-1:] if literal else ""
        if before == '"' or after == '"':
            body = r'[^"]*'
        elif before == "[" or after == "]":
            body = r"[^\]]*"
        elif after:
            # Up to the next literal character, so "$a|$b" and "$a $b" both split.
            body = rf"[^{re.escape(after)}]*" if after != " " else r"\S*"
        else:
            body = r".*"
        if var in seen:
            pattern.append(f"(?:{body})")
        else:
            seen.add(var)
            pattern.append(f"(?P<{var}>{body})")
        pos = match.end()
    pattern.append(re.escape(log_format[pos:]) + "$")
    try:
        return re.compile("".join(pattern))
    except re.error as exc:
        raise ReplayError(f"--log-format: cannot use this format ({exc})") from None


def _unescape(value: str) -> bytes:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("latin-1", "replace"))


def _log_time_ns(fields: dict[str, str]) -> int:
    msec = fields.get("msec")
    if msec and msec != "-":
        seconds, _, frac = msec.partition(".")
        return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9])
    iso = fields.get("time_iso8601")
    if iso and iso != "-":
        moment = _dt.datetime.fromisoformat(iso)
    else:
        local = fields.get("time_local")
        if not local or local == "-":
            raise ValueError("no time field ($msec, $time_iso8601 or $time_local) in the format")
        moment = _dt.datetime.strptime(local, "%d/%b/%Y:%H:%M:%S %z")
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _seconds_ns(value: str | None) -> int | None:
    if not value or value == "-":
        return None
    # $upstream_response_time lists one time per upstream tried: "0.010, 0.020"; sum them.
    total = 0.0
    for part in value.replace(":", ",").split(","):
        part = part.strip()
        if part and part != "-":
            total += float(part)
    return round(total * 1_000_000_000)


def _record(lineno: int, fields: dict[str, str]) -> CaptureRecord:
    request = fields.get("request")
    if request is not None:
        parts = request.split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/"):
            raise ValueError(f"$request is not 'METHOD TARGET HTTP/x' but {request[:60]!r}")
        method, target = parts[0], parts[1]
    elif fields.get("request_method"):
        method = fields["request_method"]
        target = fields.get("request_uri") or ""
        if not target:
            target = fields.get("uri") or "/"
            args = fields.get("args")
            if args and args != "-":
                target += "?" + args
    else:
        raise ValueError("no request field ($request or $request_method) in the format")
    duration = _seconds_ns(fields.get("request_time") or fields.get("upstream_response_time"))
    ts_ns = _log_time_ns(fields)
    if duration is not None and fields.get("msec"):
        ts_ns -= duration  # nginx logs at the end of the request
    headers: list[tuple[str, str]] = []
    for var, name in (("host", "Host"), ("content_type", "Content-Type")):
        value = fields.get(var)
        if value and value != "-":
            headers.append((name, value))
    for key, value in fields.items():
        if key.startswith("http_") and value and value != "-":
            headers.append((key[5:].replace("_", "-").title(), _unescape(value).decode("latin-1")))
    body = b""
    raw_body = fields.get("request_body")
    extra = {}
    if raw_body is not None and raw_body != "-":
        body = _unescape(raw_body)
        headers.append(("Content-Length", str(len(body))))
    elif method.upper() in _BODY_METHODS:
        extra["body_unknown"] = True
    status = fields.get("status")
    return CaptureRecord(
        id=f"log-{lineno}",
        ts_ns=ts_ns,
        method=method.upper(),
        path=request_target(_unescape(target).decode("latin-1")),
        headers=headers,
        body=body,
        status=int(status) if status and status.isdigit() else None,
        duration_ns=duration,
        extra=extra,
    )


def iter_nginx(
    path: str | os.PathLike[str],
    *,
    log_format: str | None = None,
    skip_invalid: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[CaptureRecord]:
    """Stream the requests of an access log in ``log_format`` (default: ``combined``)."""
    p = Path(path)
    name = str(p)
    regex = compile_log_format(log_format or COMBINED)
    lineno = 0
    for raw, complete in iter_file_lines(p):
        lineno += 1
        line = raw.decode("latin-1").rstrip("\r")
        if not line.strip():
            continue
        match = regex.match(line)
        try:
            if match is None:
                raise ValueError(
                    "line does not match the log format; pass the server's log_format with "
                    "--log-format"
                )
            yield _record(lineno, match.groupdict())
        except ValueError as exc:
            # A log being written (or a killed writer): its last line may be partial.
            if reject_line(
                name, lineno, str(exc), complete=complete, skip_invalid=skip_invalid, stats=stats
            ):
                return
            continue
