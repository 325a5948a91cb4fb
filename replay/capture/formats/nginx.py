"""Read nginx/Apache access logs as capture records.

Without ``log_format`` the format is recognised from the first lines: ``combined`` (also
Apache's), ``combined`` followed by extra fields (``$request_time``,
``$upstream_response_time``, ``$msec``, ``rt=``/``urt=`` pairs, quoted strings), ``common``,
or JSON lines (``escape=json`` formats such as ``{"time": "$time_iso8601", "request":
"$request", ...}``). :attr:`LogFormat.name` says which one was used. Otherwise give the
``log_format`` string as in ``nginx.conf`` (without the name; an ``escape=json`` or
``escape=none`` in front, and the single-quoted pieces, are understood)::

    '$remote_addr [$time_local] "$request" $status $request_time $msec "$http_user_agent"'

Values are decoded as nginx escapes them: ``\\xHH`` by default, JSON escapes with
``escape=json``. What the importer uses:

- the request: ``$request`` (``GET /p?q HTTP/1.1``), or ``$request_method`` with
  ``$request_uri`` (or ``$uri`` and ``$args``);
- the time: ``$msec``, else ``$time_iso8601``, else ``$time_local``. nginx logs when the response
  ends, so with ``$request_time`` the send time is the log time minus the request time;
- ``$status`` and ``$request_time`` (or ``$upstream_response_time``) for the original status
  and duration; ``$http_NAME`` variables, ``$host`` and ``$content_type`` become request
  headers; ``$request_body`` the body.

Lines that are no request (nginx's 400 lines for garbage, TLS handshakes sent to a plain port,
connections closed without a request: ``"-"``) are skipped and counted in one warning. Logs carry
no bodies unless ``$request_body`` is logged: such records get ``body_unknown`` when the method
usually has one. A line that does not match the format is an error naming the column and field
where it diverged, never quoting the line (it may hold a token).
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlthz.errors import CaptureFormatError, HlthzError, ReplayError
from hlthz.inputs import parse_json
from hlthz.replay.capture._files import iter_numbered_lines
from hlthz.replay.capture.format import CaptureRecord, ReadStats, reject_line
from hlthz.replay.capture.formats.http1 import origin_form

__all__ = ["COMBINED", "COMMON", "LogFormat", "detect_log_format", "iter_nginx", "parse_log_format"]

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
COMMON = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent'
_NAMED = {"combined": COMBINED, "common": COMMON, "main": COMBINED + ' "$http_x_forwarded_for"'}
_VAR = re.compile(r"\$(\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)")
_HEX_ESCAPE = re.compile(rb"\\x([0-9A-Fa-f]{2})")
_ESCAPE_PREFIX = re.compile(r"^\s*escape=(default|json|none)\s+")
_QUOTED_PIECES = re.compile(r"^\s*(?:'[^']*'\s*)+;?\s*$")
_METHOD = re.compile(r"[A-Z][A-Z_-]{0,31}")
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# An unquoted upstream variable lists one value per upstream tried: "0.010, 0.020 : 0.030".
_LIST_VALUE = r"[^\s,]*(?:(?:, | : )[^\s,]*)*"
_SAMPLE = 50
_log = logging.getLogger("hlthz.replay.capture")


@dataclass
class _Piece:
    literal: str = ""
    var: str = ""  # empty for a literal
    pattern: str = ""


@dataclass
class LogFormat:
    """A compiled access-log format: ``name`` says which (``combined``, ``combined +
    $request_time``, ``custom``, ``json`` ...), ``escape`` how values are escaped."""

    name: str
    escape: str = "default"
    pieces: list[_Piece] = field(default_factory=list)
    regex: re.Pattern[str] | None = None
    #: JSON lines: key in the object -> nginx variable (``None``: guessed from key names).
    json_keys: dict[str, str] | None = None
    json: bool = False

    @property
    def variables(self) -> set[str]:
        if self.json:
            return set((self.json_keys or {}).values()) or {"request"}
        return {piece.var for piece in self.pieces if piece.var}


def _compile(text: str, name: str, escape: str = "default") -> LogFormat:
    pieces: list[_Piece] = []
    pattern = ["^"]
    seen: set[str] = set()
    pos = 0
    for match in _VAR.finditer(text):
        literal = text[pos : match.start()]
        if literal:
            pieces.append(_Piece(literal=literal))
            pattern.append(re.escape(literal))
        var = match.group(1).strip("{}")
        after = text[match.end() : match.end() + 1]
        before = literal[-1:]
        if before == '"' and after == '"':
            body = r'(?:[^"\\]|\\.)*'  # \" (escape=json) and \x22 (default) stay inside
        elif before == "[" or after == "]":
            body = r"[^\]]*"
        elif var.startswith("upstream_") and after in (" ", ""):
            body = _LIST_VALUE
        elif after:
            # Up to the next literal character, so "$a|$b" and "$a $b" both split.
            body = rf"[^{re.escape(after)}]*" if after != " " else r"\S*"
        else:
            body = r".*"
        pieces.append(_Piece(var=var, pattern=body))
        if var in seen or var.startswith("_"):
            pattern.append(f"(?:{body})")
        else:
            seen.add(var)
            pattern.append(f"(?P<{var}>{body})")
        pos = match.end()
    tail = text[pos:]
    if tail:
        pieces.append(_Piece(literal=tail))
    pattern.append(re.escape(tail) + "$")
    try:
        regex = re.compile("".join(pattern))
    except re.error as exc:
        raise ReplayError(f"--log-format: cannot use this format ({exc})") from None
    return LogFormat(name=name, escape=escape, pieces=pieces, regex=regex)


def parse_log_format(text: str) -> LogFormat:
    """A format given by the user: a name (``combined``, ``common``, ``main``, ``json``), a
    ``log_format`` string (optionally ``escape=json ...`` and single-quoted pieces, as copied
    from ``nginx.conf``), or a JSON template ``{"key": "$var", ...}``."""
    if text.strip() in _NAMED:
        return _compile(_NAMED[text.strip()], text.strip())
    escape = "default"
    match = _ESCAPE_PREFIX.match(text)
    if match:
        escape = match.group(1)
        text = text[match.end() :]
    if _QUOTED_PIECES.match(text):
        text = "".join(re.findall(r"'([^']*)'", text))
    if text.strip() == "json":
        return LogFormat(name="json", escape="json", json=True)
    if text.lstrip().startswith("{"):
        keys = {
            key: var.strip("{}")
            for key, var in re.findall(r'"([^"]+)"\s*:\s*"?\$(\{?[A-Za-z0-9_]+\}?)"?\s*[,}]', text)
        }
        if not keys:
            raise ReplayError('--log-format: a JSON format needs "key": "$variable" pairs')
        return LogFormat(name="json (given)", escape="json", json=True, json_keys=keys)
    if "$" not in text:
        raise ReplayError(
            "--log-format: no $variables; give the log_format string from nginx.conf "
            f"or one of {', '.join(sorted(_NAMED))}, json"
        )
    fmt = _compile(text, "custom", escape)
    if not fmt.variables & {"request", "request_method"}:
        raise ReplayError("--log-format: the format must log $request (or $request_method)")
    return fmt


# -- recognising a format from the lines ----------------------------------------------------------

_TRAIL_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^\s,]+(?:(?:, | : )[^\s,]+)*|\S+')
_MSEC = re.compile(r"\d{9,10}\.\d{3}")
_SECONDS = re.compile(r"\d+\.\d{3}")
_SECONDS_LIST = re.compile(r"(?:[\d.]+|-)(?:(?:, | : )(?:[\d.]+|-))*")
_PAIR = re.compile(r"([A-Za-z_]+)=(.*)")
_PAIR_VARS = {
    "rt": "request_time",
    "request_time": "request_time",
    "urt": "upstream_response_time",
    "upstream_response_time": "upstream_response_time",
    "msec": "msec",
}


def _trailing_layout(trails: list[str]) -> tuple[str, str]:
    """The format text of the fields after ``combined`` and a description of what they are."""
    columns: list[list[str]] = []
    for trail in trails:
        for i, token in enumerate(_TRAIL_TOKEN.findall(trail)):
            if i == len(columns):
                columns.append([])
            columns[i].append(token)
    named: list[str] = []
    out: list[str] = []
    ignored = 0

    def take(var: str) -> str | None:
        if var in named:
            return None
        named.append(var)
        return var

    for i, tokens in enumerate(columns):
        var: str | None = None
        pair = _PAIR.fullmatch(tokens[0])
        if all(t.startswith('"') for t in tokens):
            out.append(f'"$_{i}"')
            ignored += 1
            continue
        if pair and all(t.startswith(pair.group(1) + "=") for t in tokens):
            key = pair.group(1)
            inner = _PAIR_VARS.get(key.lower())
            var = take(inner) if inner else None
            quoted = pair.group(2).startswith('"')
            value = f"${var or f'_{i}'}"
            out.append(f'{key}="{value}"' if quoted else f"{key}={value}")
            ignored += var is None
            continue
        if all(_MSEC.fullmatch(t) for t in tokens):
            var = take("msec")
        elif all(_SECONDS.fullmatch(t) for t in tokens):
            var = take("request_time") or take("upstream_response_time")
        elif all(_SECONDS_LIST.fullmatch(t) for t in tokens):
            var = take("upstream_response_time")
        out.append(f"${var}" if var else f"$_{i}")
        ignored += var is None
    described = " ".join(f"${v}" for v in named)
    if ignored:
        described += f"{' ' if described else ''}({ignored} other field{'s' * (ignored > 1)})"
    return " ".join(out), described


def detect_log_format(lines: Iterable[str]) -> LogFormat | None:
    """The format of an access log recognised from its first lines (see the module docstring),
    or ``None`` when no known format matches any of them."""
    sample = [line for line in lines if line.strip()][:_SAMPLE]
    if not sample:
        return None
    if sample[0].lstrip().startswith("{"):
        return LogFormat(name="json", escape="json", json=True)
    combined = _compile(COMBINED + "$_trail", "combined")
    assert combined.regex is not None
    trails = []
    for line in sample:
        match = combined.regex.match(line)
        if match is not None:
            trails.append(line[match.end("http_user_agent") + 1 :])
    if trails:
        if not any(t.strip() for t in trails):
            return _compile(COMBINED, "combined")
        layout, described = _trailing_layout([t for t in trails if t.strip()])
        return _compile(f"{COMBINED} {layout}", f"combined + {described}")
    common = _compile(COMMON, "common")
    assert common.regex is not None
    if any(common.regex.match(line) for line in sample):
        return common
    return None


# -- one line -------------------------------------------------------------------------------------


def _diverges(fmt: LogFormat, line: str) -> str:
    """Where ``line`` leaves ``fmt``: column and field, never the line's text."""
    pos = 0
    previous = ""
    for piece in fmt.pieces:
        if piece.var:
            match = re.compile(piece.pattern).match(line, pos)
            assert match is not None  # every field pattern accepts the empty string
            pos = match.end()
            previous = f"${piece.var}" if not piece.var.startswith("_") else "an extra field"
            continue
        if not line.startswith(piece.literal, pos):
            expected = piece.literal if len(piece.literal) <= 12 else piece.literal[:12] + "..."
            where = f"after {previous}" if previous else "at the start"
            return f"column {pos + 1} ({where}): expected {expected!r}"
        pos += len(piece.literal)
    where = f"after {previous}" if previous else "at the start"
    return f"column {pos + 1} ({where}): unexpected text after the last field"


def _decoder(escape: str) -> Callable[[str], bytes]:
    def default(value: str) -> bytes:
        raw = value.encode("latin-1", "replace")
        return (
            _HEX_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw) if b"\\x" in raw else raw
        )

    def as_json(value: str) -> bytes:
        if "\\" not in value:
            return value.encode("latin-1", "replace")
        try:
            text = json.loads(f'"{value}"')
        except ValueError:
            return default(value)
        return str(text).encode("latin-1", "replace")

    if escape == "json":
        return as_json
    if escape == "none":
        return lambda value: value.encode("latin-1", "replace")
    return default


def _json_fields(fmt: LogFormat, line: str) -> dict[str, str]:
    """A JSON log line as ``{variable: value}`` (values already decoded by the JSON parser)."""
    try:
        doc = parse_json(line, source="", line=1)
    except HlthzError as exc:
        # escape=default inside a JSON template: nginx wrote \x22, which JSON does not know.
        try:
            doc = parse_json(re.sub(r"\\x([0-9A-Fa-f]{2})", r"\\u00\1", line), source="", line=1)
        except HlthzError:
            problem = str(exc).removeprefix(":1: ")
            raise ValueError(f"{problem} (log format: json)") from None
    if not isinstance(doc, dict):
        raise ValueError("column 1: not a JSON object (log format: json)")
    fields: dict[str, str] = {}
    for key, value in doc.items():
        keys = fmt.json_keys
        var = keys.get(key) if keys is not None else _json_alias(str(key))
        if var is None or value is None or isinstance(value, dict | list):
            continue
        fields.setdefault(var, value if isinstance(value, str) else json.dumps(value))
    return fields


_ALIASES = {
    "method": "request_method",
    "httpmethod": "request_method",
    "verb": "request_method",
    "path": "uri",
    "url": "request_uri",
    "querystring": "args",
    "query": "args",
    "statuscode": "status",
    "responsestatus": "status",
    "duration": "request_time",
    "responsetime": "request_time",
    "rt": "request_time",
    "urt": "upstream_response_time",
    "timestamp": "time",
    "time": "time",
    "useragent": "http_user_agent",
    "referer": "http_referer",
    "referrer": "http_referer",
    "body": "request_body",
}
_KNOWN_VARS = frozenset(
    (
        "request",
        "request_method",
        "request_uri",
        "uri",
        "args",
        "status",
        "request_time",
        "upstream_response_time",
        "msec",
        "time_iso8601",
        "time_local",
        "host",
        "content_type",
        "request_body",
    )
)


def _json_alias(key: str) -> str | None:
    norm = key.strip().lstrip("$@").lower().replace("-", "_")
    if norm in _KNOWN_VARS or norm.startswith("http_"):
        return norm
    return _ALIASES.get(norm.replace("_", ""))


def _seconds_ns(value: str | None) -> int | None:
    if not value or value == "-":
        return None
    # $upstream_response_time lists one time per upstream tried: "0.010, 0.020"; sum them.
    total = 0.0
    for part in value.replace(":", ",").split(","):
        part = part.strip()
        if part and part != "-":
            try:
                total += float(part)
            except ValueError:
                raise ValueError("$request_time is not a number of seconds") from None
    if not 0 <= total <= 86_400 * 365:  # nan, inf, negative or beyond a year: no duration
        raise ValueError("$request_time is not a number of seconds from 0 to a year")
    return round(total * 1_000_000_000)


def _time_ns(fields: dict[str, str]) -> int:
    for var in ("msec", "time_iso8601", "time_local", "time"):
        value = fields.get(var)
        if value and value != "-":
            try:
                return _parse_time(value)
            except (ValueError, OverflowError):
                raise ValueError(f"${var} is not a time nginx writes") from None
    raise ValueError("no time field ($msec, $time_iso8601 or $time_local) in the format")


def _parse_time(value: str) -> int:
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds, _, frac = text.partition(".")
        if len(seconds) >= 13:  # milliseconds since the epoch
            return int(seconds) * 1_000_000 + int((frac + "000000")[:6])
        return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9])
    if re.match(r"\d{4}-\d{2}-\d{2}", text):
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    else:
        moment = _dt.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _request(fields: dict[str, str], decode: Callable[[str], bytes]) -> tuple[str, str] | None:
    """``(method, target)``, or ``None`` when the line records no HTTP request."""
    request = fields.get("request")
    if request is not None:
        parts = decode(request).decode("latin-1").split(" ")
        if len(parts) == 3 and parts[2].startswith("HTTP/"):
            method, target = parts[0], parts[1]
        elif len(parts) == 2 and parts[1].startswith("/"):
            method, target = parts  # HTTP/0.9
        else:
            return None
    else:
        method = decode(fields.get("request_method") or "").decode("latin-1")
        target = fields.get("request_uri") or ""
        if not target or target == "-":
            target = fields.get("uri") or ""
            args = fields.get("args")
            if target and args and args != "-":
                target += "?" + args
        target = decode(target).decode("latin-1") if target and target != "-" else ""
    if not _METHOD.fullmatch(method) or not target:
        return None
    return method, target


def _record(
    lineno: int, fields: dict[str, str], decode: Callable[[str], bytes]
) -> CaptureRecord | None:
    request = _request(fields, decode)
    if request is None:
        return None
    method, target = request
    duration = _seconds_ns(fields.get("request_time") or fields.get("upstream_response_time"))
    ts_ns = _time_ns(fields)
    if duration is not None:
        ts_ns -= duration  # nginx logs when the request ends
    headers: list[tuple[str, str]] = []
    for var, name in (("host", "Host"), ("content_type", "Content-Type")):
        value = fields.get(var)
        if value and value != "-":
            headers.append((name, decode(value).decode("latin-1")))
    for key, value in fields.items():
        if key.startswith("http_") and value and value != "-":
            headers.append((key[5:].replace("_", "-").title(), decode(value).decode("latin-1")))
    body = b""
    raw_body = fields.get("request_body")
    extra: dict[str, Any] = {}
    if raw_body and raw_body != "-":
        body = decode(raw_body)
        headers.append(("Content-Length", str(len(body))))
    elif method in _BODY_METHODS:
        extra["body_unknown"] = True
    status = fields.get("status")
    return CaptureRecord(
        id=f"log-{lineno}",
        ts_ns=ts_ns,
        method=method,
        path=origin_form(target),
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
    """Stream the requests of an access log in ``log_format`` (default: recognised from the
    first lines); ``stats.detail`` names the format used."""
    p = Path(path)
    name = str(p)
    # Blank lines are skipped in bulk (a file or gzip bomb of newlines costs no loop a line).
    lines: Iterator[tuple[int, str, bool]] = (
        (number, raw.decode("latin-1").rstrip("\r"), complete)
        for number, raw, complete in iter_numbered_lines(p)
    )
    if log_format is not None:
        fmt = parse_log_format(log_format)
    else:
        head: collections.deque[tuple[int, str, bool]] = collections.deque()
        for item in lines:
            head.append(item)
            if sum(1 for _, text, _ in head if text.strip()) >= _SAMPLE:
                break
        found = detect_log_format(text for _, text, complete in head if complete)
        if found is None:
            first = next((n for n, text, _ in head if text.strip()), 1)
            text = next((text for _, text, _ in head if text.strip()), "")
            where = _diverges(_compile(COMBINED, "combined"), text) if text else "empty file"
            raise CaptureFormatError(
                name,
                first,
                f"not an access log in a format hlthz recognises (combined, common, combined + "
                f"fields, JSON lines): {where}; pass the server's log_format with --log-format",
            )
        fmt = found
        lines = _chain(head, lines)
    if stats is not None:
        stats.detail = f"nginx log format: {fmt.name}"
    # JSON lines are unescaped by the JSON parser; other formats as nginx escaped them.
    decode = _decoder("none" if fmt.json else fmt.escape)
    not_requests = yielded = 0
    for lineno, line, complete in lines:
        if not line.strip():
            continue
        try:
            if fmt.json:
                fields = _json_fields(fmt, line)
            else:
                assert fmt.regex is not None
                match = fmt.regex.match(line)
                if match is None:
                    raise ValueError(
                        f"does not match the log format ({fmt.name}) at {_diverges(fmt, line)}; "
                        "pass the server's log_format with --log-format"
                    )
                fields = match.groupdict()
            record = _record(lineno, fields, decode)
        except ValueError as exc:
            # A log being written (or a killed writer): its last line may be partial.
            if reject_line(
                name, lineno, str(exc), complete=complete, skip_invalid=skip_invalid, stats=stats
            ):
                break
            continue
        if record is None:
            not_requests += 1
            continue
        yielded += 1
        yield record
    if not_requests:
        if stats is not None:
            stats.not_requests += not_requests
        if not yielded:
            return  # "no requests to import (... N not requests)" says it in its one line
        _log.warning(
            "%s: %d line%s not an HTTP request (garbage, TLS handshakes or empty connections "
            "nginx answered with 400) and %s skipped",
            name,
            not_requests,
            "s are" if not_requests > 1 else " is",
            "were" if not_requests > 1 else "was",
        )


def _chain(
    head: Iterable[tuple[int, str, bool]], rest: Iterator[tuple[int, str, bool]]
) -> Iterator[tuple[int, str, bool]]:
    yield from head
    yield from rest
