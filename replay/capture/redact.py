"""Redaction: remove secrets from a request before it is written anywhere.

Every writer of captures (the WSGI/ASGI middleware, the proxy, ``replay import``) passes each
record through a :class:`Redactor` first, so secrets never reach the disk. The policy
(docs/capture.md, *Redaction policy*, has the table):

- **Names.** A header, cookie, query/form/JSON/multipart field or XML element whose *name* is
  sensitive has its value replaced. Names are normalised (case, ``-``, ``_``, ``.``, brackets
  and common prefixes/suffixes: ``X_Api_Key``, ``user[password]``, ``new_password``,
  ``password_confirmation`` all match), see :mod:`hlthz.replay.capture._policy`. The
  ``Authorization`` scheme and cookie names stay.
- **Shapes.** Everywhere else a value is scanned: JWTs, ``Bearer``/``Basic``/``Token``
  credentials, well-known API key prefixes, long high-entropy tokens, payment card numbers
  (Luhn, any separators, next to other digits), e-mail addresses on request.
- **Every part**: URL userinfo, query strings (``&`` and ``;``), path parameters, headers
  (URL-valued ones such as ``Referer`` as URLs), and bodies: JSON (JSON inside strings, card
  numbers as numbers), forms, multipart (``name*=``), XML, GraphQL and text. Compressed bodies
  are recognised by their magic bytes, decoded, redacted and encoded again.
- **Unparsed bodies are dropped.** A body in a format HLTHZ cannot read (binary, an unknown
  media type, ``br``/``zstd``, a decompression bomb) is removed and the record marked
  ``body_dropped`` (why) and ``body_unknown``, unless ``keep_unparsed=True``: secrets in
  unknown formats never reach the disk by default.

A redacted value becomes ``[REDACTED:<12 hex>]``, an HMAC of the value under the redactor's key:
the same value always gives the same placeholder within a capture, so sessions and repeated
tokens still group, yet the placeholder reveals nothing. The key is random per redactor unless
given (give one to make placeholders stable across captures).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from hlthz.replay.capture._policy import (
    DEFAULT_FIELDS,
    DEFAULT_STEMS,
    Names,
    Shapes,
    luhn_valid,
    strip_scheme,
)
from hlthz.replay.capture._scrub import Scrubber
from hlthz.replay.capture.format import CaptureRecord

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_HEADERS",
    "DEFAULT_STEMS",
    "PLACEHOLDER_PREFIX",
    "RedactionStats",
    "Redactor",
    "luhn_valid",
]

#: Headers always redacted whole (besides every header whose name is sensitive).
DEFAULT_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
)
PLACEHOLDER_PREFIX = "[REDACTED:"

_PLACEHOLDER = re.compile(r"\[REDACTED:[0-9a-f]{12}\]")
# Headers that describe the message, never carry a secret, and must stay byte-exact for the
# request to replay (the multipart boundary, ETags, integrity digests).
_STRUCTURAL = frozenset(
    (
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "expect",
        "upgrade",
        "accept",
        "accept-encoding",
        "accept-language",
        "accept-charset",
        "date",
        "etag",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
        "range",
        "cache-control",
        "pragma",
        "digest",
        "content-md5",
        "content-digest",
        "repr-digest",
        "want-digest",
    )
)
_URL_HEADERS = frozenset(
    (
        "referer",
        "origin",
        "location",
        "content-location",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
    )
)


@dataclass
class RedactionStats:
    """What one or more :meth:`Redactor.redact` calls replaced or dropped: header names,
    body/query field names, value shapes (``card_number``, ``jwt``, ``token`` ...) and dropped
    bodies by reason (``format``, ``encoding``, ``size``, ``part``)."""

    headers: dict[str, int] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)
    patterns: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, other: RedactionStats) -> None:
        for mine, theirs in (
            (self.headers, other.headers),
            (self.fields, other.fields),
            (self.patterns, other.patterns),
            (self.dropped, other.dropped),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count

    @property
    def total(self) -> int:
        """Values replaced (dropped bodies are counted in :attr:`bodies_dropped`)."""
        return sum(self.headers.values()) + sum(self.fields.values()) + sum(self.patterns.values())

    @property
    def bodies_dropped(self) -> int:
        return sum(self.dropped.values())


class Redactor:
    """Replace secrets in a :class:`CaptureRecord` with stable placeholders (module docstring).

    ``extra_headers``/``extra_fields`` add names to redact (``fields``/``headers``/``stems``
    replace the defaults: exact short names, always-redacted headers, words a sensitive name
    contains); ``keep_fields`` are names never redacted (e.g. a pagination ``cursor`` that looks
    random). ``cards``, ``tokens`` (long high-entropy values) and ``emails`` switch those shape
    detectors. ``keep_unparsed=True`` keeps bodies HLTHZ cannot parse instead of dropping them.
    ``key`` (bytes) fixes the HMAC key so placeholders are stable across runs and processes;
    without it the key is ``HLTHZ_REDACT_KEY`` from the environment, else random.
    ``enabled=False`` passes records through untouched (``--no-redact``).
    """

    def __init__(
        self,
        *,
        headers: Iterable[str] = DEFAULT_HEADERS,
        fields: Iterable[str] = DEFAULT_FIELDS,
        stems: Iterable[str] = DEFAULT_STEMS,
        extra_headers: Iterable[str] = (),
        extra_fields: Iterable[str] = (),
        keep_fields: Iterable[str] = (),
        cards: bool = True,
        tokens: bool = True,
        emails: bool = False,
        keep_unparsed: bool = False,
        key: bytes | None = None,
        enabled: bool = True,
    ) -> None:
        self.headers = frozenset(h.strip().lower() for h in (*headers, *extra_headers))
        self.names = Names(exact=(*fields, *extra_fields), stems=stems, keep=keep_fields)
        self.shapes = Shapes(cards=cards, tokens=tokens, emails=emails)
        self.keep_unparsed = keep_unparsed
        self.enabled = enabled
        if key is None:
            # One key for every process of a deployment (HLTHZ_REDACT_KEY) gives their
            # captures the same placeholders and session ids, so they merge; else random.
            key = os.environ.get("HLTHZ_REDACT_KEY", "").encode() or secrets.token_bytes(32)
        self._key = key

    @property
    def cards(self) -> bool:
        return self.shapes.cards

    @property
    def emails(self) -> bool:
        return self.shapes.emails

    @property
    def fields(self) -> frozenset[str]:
        """The exact (normalised) sensitive names."""
        return self.names.exact

    def describe(self) -> dict[str, Any]:
        """The settings, for a capture header (never the key)."""
        return {
            "enabled": self.enabled,
            "headers": sorted(self.headers),
            "fields": sorted(self.names.exact),
            "stems": list(self.names.stems),
            "keep_fields": sorted(self.names.keep),
            "cards": self.shapes.cards,
            "tokens": self.shapes.tokens,
            "emails": self.shapes.emails,
            "keep_unparsed": self.keep_unparsed,
        }

    def placeholder(self, value: str | bytes) -> str:
        """The stable placeholder for ``value``."""
        text = value if isinstance(value, str) else value.decode("latin-1")
        if _PLACEHOLDER.fullmatch(text):
            return text  # already redacted (re-importing a capture): keep it stable
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        digest = hmac.new(self._key, raw, hashlib.sha256).hexdigest()[:12]
        return f"{PLACEHOLDER_PREFIX}{digest}]"

    def session_id(self, value: str) -> str:
        """A keyed hash (16 hex) naming a session by a secret value without revealing it."""
        return hmac.new(self._key, value.encode("utf-8", "surrogateescape"), "sha256").hexdigest()[
            :16
        ]

    # -- headers ---------------------------------------------------------------------------

    def _header(self, scrub: Scrubber, name: str, value: str) -> str:
        key = name.strip().lower()
        if key == "host" and "@" in value:
            # Some servers (werkzeug) set Host from an absolute-form target, userinfo included.
            scrub.stats.patterns["userinfo"] = scrub.stats.patterns.get("userinfo", 0) + 1
            return value.rpartition("@")[2]
        if not value or key in _STRUCTURAL:
            return value
        if key == "cookie":
            self._count(scrub, key)
            return "; ".join(self._cookie(item.strip()) for item in value.split(";"))
        if key == "set-cookie":
            self._count(scrub, key)
            first, sep, attrs = value.partition(";")
            return self._cookie(first.strip()) + sep + attrs
        if key in self.headers or self.names.sensitive(key):
            self._count(scrub, key)
            scheme, credential = strip_scheme(value)
            return scheme + self.placeholder(credential) if credential else value
        if key in _URL_HEADERS or value.startswith(("http://", "https://", "//")):
            return scrub.url(value)
        return scrub.text(value)

    @staticmethod
    def _count(scrub: Scrubber, key: str) -> None:
        scrub.stats.headers[key] = scrub.stats.headers.get(key, 0) + 1

    def _cookie(self, item: str) -> str:
        name, sep, val = item.partition("=")
        return f"{name}={self.placeholder(val)}" if sep else self.placeholder(name)

    # -- records ---------------------------------------------------------------------------

    def redact(self, record: CaptureRecord) -> tuple[CaptureRecord, RedactionStats]:
        """A redacted copy of ``record`` (the record itself when nothing changed) and what was
        replaced or dropped."""
        stats = RedactionStats()
        if not self.enabled:
            return record, stats
        scrub = Scrubber(self, stats)
        headers = [(name, self._header(scrub, name, value)) for name, value in record.headers]
        path = scrub.url(record.path)
        body = record.body
        extra = record.extra
        if body:
            body, dropped = scrub.payload(
                body, record.header("content-type") or "", record.header("content-encoding") or ""
            )
            if dropped is None and scrub.parts_dropped:
                dropped = "part"
            if dropped is not None:
                stats.dropped[dropped] = stats.dropped.get(dropped, 0) + 1
                extra = {**extra, "body_dropped": dropped, "body_unknown": True}
                if not body:  # an empty body is not gzip any more
                    headers = [
                        (n, v) for n, v in headers if n.strip().lower() != "content-encoding"
                    ]
            if body is not record.body and not record.extra.get("body_truncated"):
                # A cut body keeps the original length: it says how much was sent.
                headers = [
                    (n, str(len(body)) if n.strip().lower() == "content-length" else v)
                    for n, v in headers
                ]
        if (
            body is record.body
            and path == record.path
            and extra is record.extra
            and headers == record.headers
        ):
            return record, stats
        return replace(record, headers=headers, path=path, body=body, extra=extra), stats

    def redact_body(self, body: bytes, content_type: str, stats: RedactionStats) -> bytes:
        """Redact a body by its media type (compression detected by magic bytes); a body that
        cannot be parsed comes back empty, its reason counted in ``stats.dropped``."""
        scrub = Scrubber(self, stats)
        new, dropped = scrub.payload(body, content_type, "")
        if dropped is not None:
            stats.dropped[dropped] = stats.dropped.get(dropped, 0) + 1
        return new
