"""One redaction pass over the parts of a request: URLs, query strings and every body format.

:class:`Scrubber` is created by :meth:`hlthz.replay.capture.redact.Redactor.redact` for one
record; it knows the redactor's :class:`~hlthz.replay.capture._policy.Names` and
:class:`~hlthz.replay.capture._policy.Shapes`, turns every secret it finds into the redactor's
placeholder and counts it in :attr:`Scrubber.stats`.

Bodies are first decoded (:mod:`hlthz.replay.capture._codecs`, by magic bytes), then read by
their format: JSON (also JSON inside JSON strings, NDJSON, cut-short JSON), urlencoded forms
(``&`` and ``;``), multipart (``name=`` and RFC 2231 ``name*=``), XML, GraphQL and text. A body
in any other format, or in an encoding that cannot be decoded, is *dropped* (the caller marks
the record) unless the redactor keeps unparsed bodies. Methods return the very object they were
given when nothing changed, so untouched parts keep their exact bytes.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from hlthz.replay.capture import _codecs

if TYPE_CHECKING:
    from hlthz.replay.capture.redact import RedactionStats, Redactor

__all__ = ["Scrubber"]

_JSON_TYPES = ("json", "jsonl")
_XML = re.compile(r"[/+]xml$")
# "name": value in JSON text that does not parse (cut short): strings, maybe unterminated,
# numbers and literals.
_JSON_FIELD = re.compile(r'"([^"\\]{1,100})"\s*:\s*("(?:[^"\\]|\\.)*"?|[-+.\w]+)')
_FORM = re.compile(r"^[\w.%+\-\[\]]+=[^&;=\s]*(?:[&;][\w.%+\-\[\]]+=[^&;=\s]*)*$")
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_PARAM = re.compile(r';\s*([\w*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_SEP = re.compile(r"([&;])")
_ABSOLUTE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)(.*)$", re.S)
_MATRIX = re.compile(r";([^;/=?]+)=([^;/?]*)")
# name = value / name: value in free text ("password=hunter2", "token: abc").
_TEXT_FIELD = re.compile(
    r"""(?P<name>[A-Za-z_][\w.\-\[\]]{0,63})["']?[ \t]*[:=][ \t]*"""
    r"""(?:"(?P<dq>[^"\n]+)"|'(?P<sq>[^'\n]+)'|(?P<bare>[^\s"'&<>]+))"""
)
_SCHEME_WORDS = frozenset(("bearer", "basic", "token", "digest"))
# XML: <ns:Name attrs>text or CDATA</ns:Name>, and name="value" attributes.
_XML_ELEMENT = re.compile(
    r"<(?P<tag>(?:[\w.-]+:)?(?P<local>[\w.-]+))(?P<attrs>\s[^<>]*?)?>"
    r"(?P<text><!\[CDATA\[.*?\]\]>|[^<]*)</(?P=tag)\s*>",
    re.S,
)
_XML_ATTR = re.compile(r"""(?P<name>(?:[\w.-]+:)?[\w.-]+)\s*=\s*(?P<q>["'])(?P<value>.*?)(?P=q)""")
_XML_PAIR = re.compile(r"<[^<>]*\b(?:name|key)\s*=\s*[\"']([^\"']*)[\"'][^<>]*>", re.S)
# GraphQL argument literals: name: "string" | """block""" | number.
_GRAPHQL_ARG = re.compile(
    r'(?P<name>[_A-Za-z][_0-9A-Za-z]*)\s*:\s*(?P<value>"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"'
    r"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
)
_GRAPHQL_KEYS = frozenset(("query", "mutation"))
_PAIR_NAME_KEYS = ("name", "key", "field", "param")
_PAIR_VALUE_KEYS = ("value", "val")


class Scrubber:
    """Redacts the parts of one request for ``redactor``; see the module docstring."""

    def __init__(self, redactor: Redactor, stats: RedactionStats) -> None:
        self.redactor = redactor
        self.names = redactor.names
        self.shapes = redactor.shapes
        self.stats = stats
        #: Multipart file parts emptied in this pass.
        self.parts_dropped = 0

    # -- values ----------------------------------------------------------------------------

    def secret(self, kind: str, value: str) -> str:
        """The placeholder of a secret found by its shape (counted under ``kind``)."""
        self.stats.patterns[kind] = self.stats.patterns.get(kind, 0) + 1
        return self.redactor.placeholder(value)

    def field(self, name: str, value: str | bytes) -> str:
        """The placeholder of the value of a sensitive field ``name`` (counted under it)."""
        self.stats.fields[name] = self.stats.fields.get(name, 0) + 1
        return self.redactor.placeholder(value)

    def text(self, text: str, *, long_tokens: bool = True) -> str:
        """Secret-shaped parts of free text replaced."""
        return self.shapes.scan(text, self.secret, long_tokens=long_tokens)

    def value(self, text: str) -> str:
        """A value of unknown format: JSON when it parses as a JSON object or array (a JSON
        document inside a string or a form field), else free text."""
        stripped = text.lstrip()
        if stripped[:1] in ("{", "[") and len(stripped) > 1:
            try:
                doc = json.loads(text)
            except ValueError:
                pass
            else:
                new = self.json_value(doc)
                return text if new is doc else _dump(new)
        return self.text(text)

    # -- URLs ------------------------------------------------------------------------------

    def url(self, url: str) -> str:
        """A request target or an absolute URL: userinfo, path parameters, query."""
        head = ""
        rest = url
        match = _ABSOLUTE.match(url)
        if match is not None:
            scheme, authority, rest = match.group(1) or "", match.group(2), match.group(3)
            userinfo, at, host = authority.rpartition("@")
            if at and userinfo:
                # Removed rather than replaced: a placeholder's brackets would read as an IPv6
                # host, and a replay never sends userinfo anyway.
                self.stats.patterns["userinfo"] = self.stats.patterns.get("userinfo", 0) + 1
                authority = host
            head = f"{scheme}//{authority}"
        path, qmark, query = rest.partition("?")
        query, hash_, fragment = query.partition("#")
        new_path = self.path(path)
        new_query = self.query(query) if qmark else query
        new_fragment = self.query(fragment) if hash_ and "=" in fragment else fragment
        new = head + new_path + qmark + new_query + hash_ + new_fragment
        return url if new == url else new

    def path(self, path: str) -> str:
        """Path parameters (``;jsessionid=...``) by name; JWTs, keys and cards by shape (not
        long tokens: ids and hashes are path segments)."""
        if ";" in path:
            path = _MATRIX.sub(
                lambda m: (
                    f";{m.group(1)}={self.field(m.group(1), m.group(2))}"
                    if m.group(2) and self.names.sensitive(m.group(1))
                    else m.group(0)
                ),
                path,
            )
        return self.text(path, long_tokens=False)

    def query(self, query: str) -> str:
        """A query string or urlencoded form, pair by pair (``&`` or ``;`` between pairs);
        untouched pairs keep their exact bytes."""
        if not query:
            return query
        pieces = _SEP.split(query)
        changed = False
        for i in range(0, len(pieces), 2):
            new = self._pair(pieces[i])
            if new is not pieces[i]:
                pieces[i] = new
                changed = True
        return "".join(pieces) if changed else query

    def _pair(self, pair: str) -> str:
        raw_name, eq, raw_value = pair.partition("=")
        if not eq:
            plain = urllib.parse.unquote_plus(pair)
            scanned = self.text(plain)
            return pair if scanned == plain else _quote(scanned)
        name = urllib.parse.unquote_plus(raw_name)
        value = urllib.parse.unquote_plus(raw_value)
        if raw_value and self.names.sensitive(name):
            return f"{raw_name}={_quote(self.field(name, value))}"
        new = self.value(value)
        return pair if new == value else f"{raw_name}={_quote(new)}"

    # -- JSON ------------------------------------------------------------------------------

    def json_value(self, value: Any, key: str | None = None) -> Any:
        """A parsed JSON value with its secrets replaced; the same object when untouched."""
        if (
            isinstance(value, str)
            and len(value) < self.shapes.min_length
            and value[:1] not in ("{", "[")
            and key not in _GRAPHQL_KEYS
        ):
            return value  # too short for any shape and no JSON: most values of a document
        if isinstance(value, dict):
            return self._json_object(value)
        if isinstance(value, list):
            items = [self.json_value(item, key) for item in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if isinstance(value, str):
            new = self.graphql(value) if key in _GRAPHQL_KEYS else self.value(value)
            return value if new == value else new
        if isinstance(value, int) and not isinstance(value, bool) and self.shapes.cards:
            text = str(value)
            if 13 <= len(text) <= 19:
                scanned = self.text(text)
                if scanned != text:
                    return scanned
        return value

    def _json_object(self, obj: dict[Any, Any]) -> dict[Any, Any]:
        # {"name": "password", "value": "..."}: the pair names its own value.
        pair = ("value" in obj or "val" in obj) and any(
            isinstance(obj.get(k), str) and self.names.sensitive(obj[k]) for k in _PAIR_NAME_KEYS
        )
        out: dict[Any, Any] = {}
        changed = False
        for key, item in obj.items():
            secret = isinstance(key, str) and (
                self.names.sensitive(key) or (pair and key in _PAIR_VALUE_KEYS)
            )
            if secret and item not in (None, "") and not isinstance(item, bool):
                raw = item if isinstance(item, str) else json.dumps(item, sort_keys=True)
                out[key] = self.field(key, raw)
                changed = True
                continue
            new = self.json_value(item, key if isinstance(key, str) else None)
            changed = changed or new is not item
            out[key] = new
        return out if changed else obj

    def json_text(self, text: str) -> str:
        """JSON text: parsed and rewritten when it changes; NDJSON line by line; text that does
        not parse (cut by ``max_body``) is redacted by its ``"name": value`` pairs and shapes."""
        try:
            doc = json.loads(text)
        except ValueError:
            pass
        else:
            new = self.json_value(doc)
            return text if new is doc else _dump(new)
        if "\n" in text.strip():
            lines = text.split("\n")
            out = [self.json_text(line) if line.strip() else line for line in lines]
            return text if out == lines else "\n".join(out)
        fixed = _JSON_FIELD.sub(self._json_pair, text)
        return self.text(fixed)

    def _json_pair(self, match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if not self.names.sensitive(name) or value in ("null", '""', "true", "false"):
            return match.group(0)
        raw = value[1:].rstrip('"') if value.startswith('"') else value
        return f'"{name}":"{self.field(name, raw)}"'

    # -- other text formats ----------------------------------------------------------------

    def graphql(self, text: str) -> str:
        """A GraphQL document: string and number arguments with a sensitive name, then shapes."""

        def arg(match: re.Match[str]) -> str:
            name = match.group("name")
            if not self.names.sensitive(name):
                return match.group(0)
            value = match.group("value").strip('"')
            prefix = match.group(0)[: match.start("value") - match.start()]
            return f'{prefix}"{self.field(name, value)}"'

        return self.text(_GRAPHQL_ARG.sub(arg, text))

    def xml(self, text: str) -> str:
        """XML: sensitive elements (any namespace, CDATA too), sensitive attributes, elements
        and ``value=`` attributes of ``<x name="password">`` pairs, then shapes."""

        def element(match: re.Match[str]) -> str:
            local = match.group("local")
            attrs = match.group("attrs") or ""
            named = _XML_PAIR.match(f"<x{attrs}>")
            pair_name = named.group(1) if named else ""
            if not (self.names.sensitive(local) or self.names.sensitive(pair_name)):
                return match.group(0)
            inner = match.group("text")
            if not inner.strip():
                return match.group(0)
            start = match.start("text") - match.start()
            name = local if self.names.sensitive(local) else pair_name
            whole = match.group(0)
            return whole[:start] + self.field(name, inner) + whole[start + len(inner) :]

        def attribute(match: re.Match[str]) -> str:
            name = match.group("name").rpartition(":")[2]
            if not match.group("value") or not self.names.sensitive(name):
                return match.group(0)
            quote = match.group("q")
            placeholder = self.field(name, match.group("value"))
            return f"{match.group('name')}={quote}{placeholder}{quote}"

        def pair_values(match: re.Match[str]) -> str:
            tag = match.group(0)
            if not self.names.sensitive(match.group(1)):
                return tag
            return re.sub(
                r"""(\bvalue\s*=\s*)(["'])(.*?)\2""",
                lambda m: (
                    f"{m.group(1)}{m.group(2)}{self.field(match.group(1), m.group(3))}{m.group(2)}"
                    if m.group(3)
                    else m.group(0)
                ),
                tag,
            )

        text = _XML_ELEMENT.sub(element, text)
        text = _XML_ATTR.sub(attribute, text)
        text = _XML_PAIR.sub(pair_values, text)
        return self.text(text)

    def plain_text(self, text: str) -> str:
        """Free text (JSON when it is JSON): shapes first (``Bearer xyz`` keeps its scheme),
        then ``name=value`` and ``name: value`` pairs with a sensitive name."""

        if text.lstrip()[:1] in ("{", "[") and _parses(text):
            return self.value(text)

        def pair(match: re.Match[str]) -> str:
            group = match.lastgroup or "bare"
            value = match.group(group)
            if (
                not self.names.sensitive(match.group("name"))
                or value.lower() in _SCHEME_WORDS
                or value.startswith("[REDACTED:")
            ):
                return match.group(0)
            whole = match.group(0)
            start, end = match.start(group) - match.start(), match.end(group) - match.start()
            return whole[:start] + self.field(match.group("name"), value) + whole[end:]

        return _TEXT_FIELD.sub(pair, self.text(text))

    # -- bodies ----------------------------------------------------------------------------

    def payload(self, data: bytes, content_type: str, encoding: str) -> tuple[bytes, str | None]:
        """``(body, dropped)``: the redacted body, or ``(b"", reason)`` when it must be dropped
        (``"encoding"``: undecodable, ``"size"``: too large decoded, ``"format"``: a format
        HLTHZ cannot parse). The same bytes object is returned when nothing changed."""
        try:
            decoded = _codecs.decode(data, encoding)
        except _codecs.Undecodable as exc:
            if self.redactor.keep_unparsed:
                return data, None
            return b"", exc.reason
        new = self._format(decoded.plain, content_type)
        if new is None:
            return b"", "format"
        if new is decoded.plain:
            return data, None
        return _codecs.encode(new, decoded.layers), None

    def _format(self, data: bytes, content_type: str) -> bytes | None:
        """Redact plain (decoded) bytes by their media type; ``None``: cannot be parsed."""
        if not data:
            return data
        mime = content_type.split(";", 1)[0].strip().lower()
        if not mime:
            mime = _sniff(data)
        if mime.startswith("multipart/"):
            parts = self._multipart(data, content_type)
            return data if parts is None and self.redactor.keep_unparsed else parts
        if mime == "application/x-www-form-urlencoded":
            return self._text(data, self.query)
        if any(mime.endswith(t) or f"/{t}" in mime or f"+{t}" in mime for t in _JSON_TYPES):
            return self._text(data, self.json_text)
        if _XML.search(mime):
            return self._text(data, self.xml)
        if mime == "application/graphql":
            return self._text(data, self.graphql)
        if mime.startswith("text/"):
            return self._text(data, self.plain_text)
        return data if self.redactor.keep_unparsed else None

    @staticmethod
    def _text(data: bytes, redact: Any) -> bytes:
        text = data.decode("utf-8", "surrogateescape")  # any bytes round-trip
        new = redact(text)
        return data if new == text else new.encode("utf-8", "surrogateescape")

    def _multipart(self, body: bytes, content_type: str) -> bytes | None:
        """Part by part: a sensitive field's value becomes a placeholder; other parts are
        redacted by their own type (text fields as text); file parts in a format that cannot
        be parsed are emptied (:attr:`parts_dropped`) unless unparsed bodies are kept. A body cut
        by the size cap works too (its last part is simply incomplete)."""
        match = _BOUNDARY.search(content_type)
        if match is None:
            return None  # the parts cannot be told apart
        delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
        pieces = body.split(delimiter)
        out = [pieces[0]]  # the preamble
        changed = False
        for piece in pieces[1:]:
            head, sep, content = piece.partition(b"\r\n\r\n")
            if not sep:
                out.append(piece)  # the closing "--", or a part cut inside its head
                continue
            trailer = b"\r\n" if content.endswith(b"\r\n") else b""
            value = content[: len(content) - len(trailer)]
            new = self._part(head, value)
            if new is not value:
                changed = True
            out.append(head + sep + new + trailer)
        return delimiter.join(out) if changed else body

    def _part(self, head: bytes, value: bytes) -> bytes:
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, rest = line.partition(":")
            if colon:
                headers[name.strip().lower()] = rest.strip()
        params = _disposition(headers.get("content-disposition", ""))
        name = params.get("name", "")
        if name and value and self.names.sensitive(name):
            return self.field(name, value).encode("ascii")
        ctype = headers.get("content-type", "")
        if not ctype:
            ctype = "application/octet-stream" if "filename" in params else "text/plain"
        new, dropped = self.payload(value, ctype, headers.get("content-encoding", ""))
        if dropped is not None:
            self.parts_dropped += 1
        return new


def _disposition(value: str) -> dict[str, str]:
    """Content-Disposition parameters, RFC 2231/5987 ``name*=UTF-8''...`` decoded."""
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + value.partition(";")[2]):
        key = key.lower()
        text = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        if key.endswith("*"):
            charset, _, rest = text.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                text = urllib.parse.unquote(encoded, encoding=charset or "utf-8", errors="replace")
            except LookupError:
                text = urllib.parse.unquote(encoded)
            key = key[:-1]
        params[key] = text
    return params


def _sniff(data: bytes) -> str:
    """The media type of a body sent without one: JSON, XML, a form, text, or ``""``
    (binary: cannot be parsed)."""
    head = data[:512].lstrip()
    if head[:1] in (b"{", b"["):
        return "application/json"
    if head[:1] == b"<":
        return "application/xml"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if _FORM.match(text.strip()):
        return "application/x-www-form-urlencoded"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text[:2048])
    return "text/plain" if printable >= 0.95 * min(len(text), 2048) else ""


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _dump(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="[]:@/")
