"""Redaction: remove secrets from a request before it is written anywhere.

Every writer of captures (middleware, proxy, ``replay import``) passes each record through a
:class:`Redactor` first, so secrets never reach the disk. What is redacted, by default:

- headers ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-Api-Key``
  (plus any configured): the credential part is replaced, the auth scheme and cookie names stay;
- JSON, form (urlencoded and multipart) and query-string fields whose name is sensitive
  (``password``, ``token``, ``secret``, ``card_number``, ``cvv`` ...); names compare
  case-insensitively, ignoring ``-``/``_`` so ``cardNumber`` and ``card-number`` match
  ``card_number``;
- values that look like payment card numbers (13-19 digits passing the Luhn check), anywhere in
  a JSON string, form value, query value or text body; e-mail addresses optionally.

A redacted value becomes ``[REDACTED:<12 hex>]``, an HMAC of the value under the redactor's key:
the same value always gives the same placeholder within a capture, so sessions and repeated
tokens still group, yet the placeholder reveals nothing. The key is random per redactor unless
given (give one to make placeholders stable across captures).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import secrets
import urllib.parse
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from hlthz.replay.capture.format import CaptureRecord

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_HEADERS",
    "PLACEHOLDER_PREFIX",
    "RedactionStats",
    "Redactor",
    "luhn_valid",
]

DEFAULT_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
)
DEFAULT_FIELDS: tuple[str, ...] = (
    "password",
    "passwd",
    "pass",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "session",
    "sessionid",
    "card_number",
    "cardnumber",
    "cc_number",
    "pan",
    "cvv",
    "cvc",
    "pin",
    "ssn",
)
PLACEHOLDER_PREFIX = "[REDACTED:"

_PLACEHOLDER = re.compile(r"\[REDACTED:[0-9a-f]{12}\]")
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){12,18}\d(?![\d])")
# A body without Content-Type (an access log has none) that looks like ``a=1&b=2``.
_FORM = re.compile(r"^[\w.%+-]+=[^&=\s]*(?:&[\w.%+-]+=[^&=\s]*)*$")
# "name": value in JSON text that does not parse (e.g. cut short): strings (maybe unterminated),
# numbers, literals.
_JSON_FIELD = re.compile(r'"([^"\\]{1,100})"\s*:\s*("(?:[^"\\]|\\.)*"?|[-+.\w]+)')
# The field name in a multipart part's Content-Disposition (not the "filename" parameter).
_PART_NAME = re.compile(rb'(?:^|[;\s])name\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "+json", "/xml")


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (digits only) passes the Luhn checksum used by card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


@dataclass
class RedactionStats:
    """What one :meth:`Redactor.redact` call replaced: header names and body/query field names."""

    headers: dict[str, int] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)
    patterns: dict[str, int] = field(default_factory=dict)

    def add(self, other: RedactionStats) -> None:
        for mine, theirs in (
            (self.headers, other.headers),
            (self.fields, other.fields),
            (self.patterns, other.patterns),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count

    @property
    def total(self) -> int:
        return sum(self.headers.values()) + sum(self.fields.values()) + sum(self.patterns.values())


class Redactor:
    """Replace secrets in a :class:`CaptureRecord` with stable placeholders.

    ``headers``/``fields`` replace the defaults; ``extra_headers``/``extra_fields`` add to them.
    ``cards`` toggles the Luhn card-number scan, ``emails`` the e-mail scan. ``key`` (bytes)
    fixes the HMAC key so placeholders are stable across runs. ``enabled=False`` passes records
    through untouched (``--no-redact``).
    """

    def __init__(
        self,
        *,
        headers: Iterable[str] = DEFAULT_HEADERS,
        fields: Iterable[str] = DEFAULT_FIELDS,
        extra_headers: Iterable[str] = (),
        extra_fields: Iterable[str] = (),
        cards: bool = True,
        emails: bool = False,
        key: bytes | None = None,
        enabled: bool = True,
    ) -> None:
        self.headers = frozenset(h.lower() for h in (*headers, *extra_headers))
        self.fields = frozenset(_norm(f) for f in (*fields, *extra_fields))
        self.cards = cards
        self.emails = emails
        self.enabled = enabled
        self._key = key if key is not None else secrets.token_bytes(32)

    def describe(self) -> dict[str, Any]:
        """The settings, for a capture header (never the key)."""
        return {
            "enabled": self.enabled,
            "headers": sorted(self.headers),
            "fields": sorted(self.fields),
            "cards": self.cards,
            "emails": self.emails,
        }

    def placeholder(self, value: str | bytes) -> str:
        """The stable placeholder for ``value``."""
        text = value if isinstance(value, str) else value.decode("latin-1")
        if _PLACEHOLDER.fullmatch(text):
            return text  # already redacted (re-importing a capture): keep it stable
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        digest = hmac.new(self._key, raw, hashlib.sha256).hexdigest()[:12]
        return f"{PLACEHOLDER_PREFIX}{digest}]"

    # -- headers ---------------------------------------------------------------------------

    def _header_value(self, lname: str, value: str) -> str:
        if lname == "cookie":
            parts = []
            for item in value.split(";"):
                name, sep, val = item.strip().partition("=")
                parts.append(f"{name}={self.placeholder(val)}" if sep else self.placeholder(name))
            return "; ".join(parts)
        if lname == "set-cookie":
            first, sep, attrs = value.partition(";")
            name, eq, val = first.strip().partition("=")
            head = f"{name}={self.placeholder(val)}" if eq else self.placeholder(name)
            return head + sep + attrs
        scheme, space, credential = value.partition(" ")
        if space and credential and scheme.isalpha() and lname.endswith("authorization"):
            return f"{scheme} {self.placeholder(credential)}"
        return self.placeholder(value)

    # -- values ----------------------------------------------------------------------------

    def _scan_text(self, text: str, stats: RedactionStats) -> str:
        if self.cards:

            def card(m: re.Match[str]) -> str:
                digits = re.sub(r"[ -]", "", m.group(0))
                if 13 <= len(digits) <= 19 and luhn_valid(digits):
                    stats.patterns["card_number"] = stats.patterns.get("card_number", 0) + 1
                    return self.placeholder(digits)
                return m.group(0)

            text = _CARD.sub(card, text)
        if self.emails:

            def email(m: re.Match[str]) -> str:
                stats.patterns["email"] = stats.patterns.get("email", 0) + 1
                return self.placeholder(m.group(0))

            text = _EMAIL.sub(email, text)
        return text

    def _json_value(self, value: Any, stats: RedactionStats) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if isinstance(key, str) and _norm(key) in self.fields and item is not None:
                    stats.fields[key] = stats.fields.get(key, 0) + 1
                    raw = item if isinstance(item, str) else json.dumps(item, sort_keys=True)
                    out[key] = self.placeholder(raw)
                else:
                    out[key] = self._json_value(item, stats)
            return out
        if isinstance(value, list):
            return [self._json_value(item, stats) for item in value]
        if isinstance(value, str):
            return self._scan_text(value, stats)
        if isinstance(value, int) and not isinstance(value, bool) and self.cards:
            text = str(value)
            if 13 <= len(text) <= 19 and luhn_valid(text):
                stats.patterns["card_number"] = stats.patterns.get("card_number", 0) + 1
                return self.placeholder(text)
        return value

    def _json_field(self, match: re.Match[str], stats: RedactionStats) -> str:
        name, value = match.group(1), match.group(2)
        if _norm(name) not in self.fields or value == "null":
            return match.group(0)
        stats.fields[name] = stats.fields.get(name, 0) + 1
        raw = value[1:].rstrip('"') if value.startswith('"') else value
        return f'"{name}":"{self.placeholder(raw)}"'

    def _query(self, query: str, stats: RedactionStats) -> str:
        """Redact a query string or form body pair by pair, keeping untouched pairs byte-exact
        (a replayed request should differ from the original only where a secret was)."""
        out = []
        for pair in query.split("&"):
            raw_name, eq, raw_value = pair.partition("=")
            name = urllib.parse.unquote_plus(raw_name)
            value = urllib.parse.unquote_plus(raw_value)
            if eq and _norm(name) in self.fields and raw_value:
                stats.fields[name] = stats.fields.get(name, 0) + 1
                out.append(f"{raw_name}={urllib.parse.quote(self.placeholder(value), safe='[]:')}")
                continue
            scanned = self._scan_text(value, stats) if eq else value
            if scanned != value:
                out.append(f"{raw_name}={urllib.parse.quote(scanned, safe='[]:')}")
            else:
                out.append(pair)
        return "&".join(out)

    def redact_body(self, body: bytes, content_type: str, stats: RedactionStats) -> bytes:
        """Redact a (decoded) body by its content type; binary bodies pass unchanged."""
        if not body:
            return body
        ctype = content_type.split(";", 1)[0].strip().lower()
        looks_json = "json" in ctype or (not ctype and body.lstrip()[:1] in (b"{", b"["))
        if looks_json:
            try:
                doc = json.loads(body)
            except ValueError:
                # Cut by the body cap, or just broken: redact field values textually instead.
                text = body.decode("utf-8", "surrogateescape")
                text = _JSON_FIELD.sub(lambda m: self._json_field(m, stats), text)
                return self._scan_text(text, stats).encode("utf-8", "surrogateescape")
            return json.dumps(self._json_value(doc, stats), separators=(",", ":")).encode()
        if ctype == "multipart/form-data":
            return self._multipart(body, content_type, stats)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
        if ctype == "application/x-www-form-urlencoded" or (not ctype and _FORM.match(text)):
            return self._query(text, stats).encode()
        if not ctype or any(t in ctype for t in _TEXT_TYPES):
            return self._scan_text(text, stats).encode()
        return body

    def _multipart(self, body: bytes, content_type: str, stats: RedactionStats) -> bytes:
        """Redact a ``multipart/form-data`` body part by part: a sensitive field's value becomes
        a placeholder, other text fields are scanned, file parts pass unchanged. Works on a body
        cut by the size cap too (the last part is then simply incomplete)."""
        match = _BOUNDARY.search(content_type)
        if match is None:
            # No boundary to split on: the parts cannot be told apart, so keep none of them.
            stats.patterns["unreadable_body"] = stats.patterns.get("unreadable_body", 0) + 1
            return b""
        delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
        pieces = body.split(delimiter)
        out = [pieces[0]]  # the preamble
        for piece in pieces[1:]:
            head, sep, content = piece.partition(b"\r\n\r\n")
            name_match = _PART_NAME.search(head)
            if not sep or name_match is None:
                out.append(piece)  # the closing "--" or a part without a field name
                continue
            trailer = b"\r\n" if content.endswith(b"\r\n") else b""
            value = content[: len(content) - len(trailer)]
            name = (name_match.group(1) or name_match.group(2) or b"").decode("utf-8", "replace")
            if _norm(name) in self.fields and value:
                stats.fields[name] = stats.fields.get(name, 0) + 1
                value = self.placeholder(value).encode("ascii")
            elif b"filename" not in head.lower():
                text = value.decode("utf-8", "surrogateescape")  # non-UTF-8 bytes round-trip
                value = self._scan_text(text, stats).encode("utf-8", "surrogateescape")
            out.append(head + sep + value + trailer)
        return delimiter.join(out)

    # -- records ---------------------------------------------------------------------------

    def redact(self, record: CaptureRecord) -> tuple[CaptureRecord, RedactionStats]:
        """A redacted copy of ``record`` and what was replaced."""
        stats = RedactionStats()
        if not self.enabled:
            return record, stats
        headers = []
        for name, value in record.headers:
            lname = name.lower()
            if lname in self.headers and value:
                stats.headers[lname] = stats.headers.get(lname, 0) + 1
                value = self._header_value(lname, value)
            headers.append((name, value))
        path = record.path
        base, qmark, query = path.partition("?")
        if qmark and query:
            path = base + "?" + self._query(query, stats)
        body = record.body
        if body:
            body = self._redact_encoded_body(record, body, stats)
            if len(body) != len(record.body):
                headers = [
                    (n, str(len(body)) if n.lower() == "content-length" else v) for n, v in headers
                ]
        if not stats.total:
            return record, stats
        return replace(record, headers=headers, path=path, body=body), stats

    def _redact_encoded_body(
        self, record: CaptureRecord, body: bytes, stats: RedactionStats
    ) -> bytes:
        ctype = record.header("content-type") or ""
        encoding = (record.header("content-encoding") or "").strip().lower()
        if encoding in ("", "identity"):
            return self.redact_body(body, ctype, stats)
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                plain = gzip.decompress(body) if "gzip" in encoding else zlib.decompress(body)
            except (OSError, zlib.error, EOFError):
                plain = None
            if plain is not None:
                before = stats.total
                redacted = self.redact_body(plain, ctype, stats)
                if stats.total == before:
                    return body
                if "gzip" in encoding:
                    return gzip.compress(redacted, mtime=0)
                return zlib.compress(redacted)
        # An encoding we cannot inspect may hide secrets: keep no body rather than risk one.
        stats.patterns["unreadable_body"] = stats.patterns.get("unreadable_body", 0) + 1
        return b""
