"""Read HAR 1.2 files (browser DevTools exports, ``mitmdump --set hardump=``) as capture records.

A HAR is one JSON document, so it is parsed whole (HAR files are exported per page or session
and stay small). Each ``log.entries[]`` item becomes a record: ``startedDateTime`` is the send
time, ``request.postData.text`` the body (base64-decoded when ``encoding`` says so, rebuilt from
``params`` when only those are given), ``response.status`` the original status and
``timings.wait`` (time to first byte, the closest to server time a client can see) the duration,
falling back to the entry's total ``time``. HTTP/2 pseudo-headers (``:authority``...) are
dropped, ``:authority`` becoming ``Host`` when there is none; header names lose stray spaces.

The body is stored as its headers describe it. Exporters give ``postData.text`` *decoded*
(mitmproxy, browsers), while the request kept its ``Content-Encoding``: a gzip or deflate body
is compressed again so the record replays as it was sent; a body in an encoding the standard
library cannot produce (``br``, ``zstd``) is stored plain and the header removed. Its
``Content-Length`` is the stored body's length.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import gzip
import os
import urllib.parse
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hlthz.errors import CaptureFormatError
from hlthz.inputs import json_field, parse_json
from hlthz.replay.capture.format import CaptureRecord, ReadStats, iter_file_chunks

__all__ = ["MAX_HAR_BYTES", "iter_har", "parse_har_time"]

#: The largest HAR (after gunzipping) read: a HAR is one JSON document, loaded whole.
MAX_HAR_BYTES = 128 << 20


def parse_har_time(text: str) -> int:
    """ISO-8601 ``startedDateTime`` -> ns since the epoch (naive times are taken as UTC)."""
    value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _text_bytes(text: str, mime: str) -> bytes:
    """Undo the exporter's decoding: the declared charset, UTF-8 for JSON, else Latin-1.

    That is mitmproxy's rule (Latin-1 maps bytes 0-255 one to one, so binary bodies survive);
    text a browser decoded as UTF-8 has characters above U+00FF and falls back to UTF-8.
    """
    charset = ""
    for param in mime.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip('"').strip()
    if charset:
        try:
            return text.encode(charset, "surrogateescape")
        except (LookupError, UnicodeEncodeError):
            pass
    if "json" not in mime.lower():
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            pass
    return text.encode("utf-8", "surrogateescape")


def _body(post: dict[str, Any]) -> bytes:
    text = _get(post, "text", kind=(str, type(None)), where="request.postData", default=None)
    if text:
        encoding = _get(post, "encoding", kind=str, where="request.postData", default=None)
        if encoding == "base64":
            return base64.b64decode(text, validate=False)
        mime = _get(post, "mimeType", kind=str, where="request.postData", default=None)
        return _text_bytes(text, mime or "")
    params = _get(post, "params", kind=list, where="request.postData", default=None)
    if params:
        pairs = []
        for index, param in enumerate(params):
            where = f"request.postData.params[{index}]"
            name = _get(param, "name", kind=str, where=where, default="")
            value = _get(param, "value", kind=(str, type(None)), where=where, default="")
            pairs.append((name, value or ""))
        return urllib.parse.urlencode(pairs).encode()
    return b""


def _duration_ns(entry: dict[str, Any]) -> int | None:
    timings = _get(entry, "timings", kind=(dict, type(None)), default=None) or {}
    wait = _get(timings, "wait", kind=(float, type(None)), where="timings", default=None)
    if wait is not None and 0 <= wait <= _MAX_MS:
        return int(wait * 1_000_000)
    total = _get(entry, "time", kind=(float, type(None)), default=None)
    if total is not None and 0 <= total <= _MAX_MS:
        return int(total * 1_000_000)
    return None


def _encoded(body: bytes, headers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[str, str]]]:
    """``body`` in the ``Content-Encoding`` its headers declare (see the module docstring)."""
    declared = [
        token.strip().lower()
        for name, value in headers
        if name.lower() == "content-encoding"
        for token in value.split(",")
        if token.strip()
    ]
    if not declared or body[:2] == b"\x1f\x8b":
        return body, headers  # no encoding, or the exporter kept the compressed bytes
    if all(token in ("gzip", "x-gzip", "deflate", "identity") for token in declared):
        try:
            zlib.decompress(body)  # already deflate-encoded?
        except zlib.error:
            for token in reversed(declared):
                if token in ("gzip", "x-gzip"):
                    body = gzip.compress(body, mtime=0)
                elif token == "deflate":
                    body = zlib.compress(body)
        return body, headers
    return body, [(n, v) for n, v in headers if n.lower() != "content-encoding"]


class _BadEntry(ValueError):
    """An entry that cannot be read; the message names the field, never its value."""


_MAX_MS = 86_400_000.0  # a duration beyond a day is not a request's


def _get(obj: Any, *keys: str, kind: Any, where: str = "", default: Any = ...) -> Any:
    # Missing keys give ``default`` (when given); a value of the wrong JSON type is an error
    # naming the field, so a HAR that is JSON but not HAR is one line, not an AttributeError.
    if default is not ... and isinstance(obj, dict) and obj.get(keys[0]) is None:
        return default
    return json_field(obj, *keys, kind=kind, where=where, default=default, error=_BadEntry)


def _record(index: int, entry: Any) -> CaptureRecord:
    if not isinstance(entry, dict):
        raise _BadEntry("not an object")
    request = _get(entry, "request", kind=dict)
    try:
        url = urllib.parse.urlsplit(_get(entry, "request", "url", kind=str))
    except ValueError:
        raise _BadEntry("request.url is not a valid URL") from None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers: list[tuple[str, str]] = []
    authority = None
    items = _get(request, "headers", kind=(list, type(None)), where="request", default=[])
    for number, item in enumerate(items):
        where = f"request.headers[{number}]"
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise _BadEntry("request.headers: each header needs a 'name' and a 'value'")
        # Some exporters keep a stray space after the name ("Authorization "): a name that
        # no server would match and a redactor comparing names exactly would miss.
        name = _get(item, "name", kind=str, where=where).strip()
        value = str(_get(item, "value", kind=(str, float), where=where))
        if name.startswith(":"):
            if name == ":authority":
                authority = value
            continue
        headers.append((name, value))
    if authority and not any(n.lower() == "host" for n, _ in headers):
        headers.insert(0, ("Host", authority))
    post = _get(request, "postData", kind=(dict, type(None)), where="request", default={})
    try:
        body = _body(post)
    except binascii.Error:
        raise _BadEntry("request.postData.text is not valid base64") from None
    if body:
        body, headers = _encoded(body, headers)
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    response = _get(entry, "response", kind=(dict, type(None)), default={})
    status = _get(response, "status", kind=(int, type(None)), where="response", default=None)
    started = _get(entry, "startedDateTime", kind=str)
    try:
        ts_ns = parse_har_time(started)
    except (ValueError, OverflowError):
        raise _BadEntry("startedDateTime is not an ISO-8601 time") from None
    rid = _get(entry, "_id", kind=(str, int, type(None)), default=None)
    return CaptureRecord(
        id=str(rid or f"har-{index}"),
        ts_ns=ts_ns,
        method=_get(entry, "request", "method", kind=str).upper(),
        path=path,
        headers=headers,
        body=body,
        status=status if status is not None and 0 < status <= 999 else None,
        duration_ns=_duration_ns(entry),
    )


def iter_har(
    path: str | os.PathLike[str], *, skip_invalid: bool = False, stats: ReadStats | None = None
) -> Iterator[CaptureRecord]:
    """The requests of a HAR file, sorted by send time."""
    p = Path(path)
    name = str(p)
    raw = bytearray()
    for chunk in iter_file_chunks(p):
        raw += chunk
        if len(raw) > MAX_HAR_BYTES:
            raise CaptureFormatError(
                name, 0, f"larger than {MAX_HAR_BYTES >> 20} MiB; export fewer pages per HAR"
            )
    doc = parse_json(
        bytes(raw), source=name, hint="; is this a HAR file?", error=CaptureFormatError
    )
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise CaptureFormatError(name, 1, "no 'log.entries' list; is this a HAR 1.2 file?")
    records = []
    for index, entry in enumerate(entries):
        try:
            records.append(_record(index, entry))
        except (_BadEntry, AttributeError, KeyError, TypeError, ValueError) as exc:
            # Messages name the field, never its value (a header value may be a secret).
            problem = str(exc) if isinstance(exc, _BadEntry) else "missing or bad field"
            if skip_invalid:
                if stats is not None:
                    stats.invalid += 1
                continue
            raise CaptureFormatError(name, 1, f"log.entries[{index}]: {problem}") from None
    records.sort(key=lambda r: r.ts_ns)
    yield from records
