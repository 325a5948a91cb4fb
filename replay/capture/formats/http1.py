"""Parse and build raw HTTP/1.x messages, as found in GoReplay files.

Only what the importers and the exporter need: split head from body, read the request or status
line and the headers, undo ``Transfer-Encoding: chunked`` so a record holds the plain body.
"""

from __future__ import annotations

import re

from hlthz.net import request_target

__all__ = ["ParsedMessage", "build_request", "build_response", "origin_form", "parse_message"]

# Framing headers: a record holds the decoded body, so the writer frames it anew.
_FRAMING = frozenset(("transfer-encoding", "content-length"))


class ParsedMessage:
    """A parsed request (``method``/``target``) or response (``status``).

    ``head_complete`` is false when the head has no terminating blank line; ``body_complete``
    is false when the body is shorter than its ``Content-Length`` or a chunked body lacks its
    last chunk: the message was cut (a torn file, or a capture tool's buffer limit).
    """

    __slots__ = (
        "body",
        "body_complete",
        "head_complete",
        "headers",
        "method",
        "status",
        "target",
        "version",
    )

    def __init__(self) -> None:
        self.method = ""
        self.target = ""
        self.status: int | None = None
        self.version = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.head_complete = True
        self.body_complete = True


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body: ``(body, complete)``; a body cut short (as sniffers often see
    it) keeps what arrived and is not complete."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        if end < 0:
            break
        size_text = data[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            break
        if size == 0:
            return bytes(out), True
        start = end + 2
        out += data[start : start + size]
        if len(data) < start + size:
            break
        pos = start + size + 2
    return bytes(out), False


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one HTTP/1.x request or response; raise ``ValueError`` saying what is wrong
    (never quoting the message: it may hold a secret)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")  # tolerate bare LF, as some tools write
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    first = lines[0].decode("latin-1")
    msg = ParsedMessage()
    msg.head_complete = bool(sep)
    parts = first.split(" ", 2)
    if first.startswith("HTTP/"):
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("the first line is not an HTTP status line ('HTTP/x CODE ...')")
        msg.version, msg.status = parts[0], int(parts[1])
    else:
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[0].isalpha():
            raise ValueError("the first line is not an HTTP request line ('METHOD TARGET HTTP/x')")
        msg.method, msg.target, msg.version = parts[0].upper(), parts[1], parts[2]
    chunked = False
    length: int | None = None
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            if not sep and number == len(lines):
                break  # cut inside this header line
            raise ValueError(f"header line {number} of the message has no ':'")
        name, value = name.strip(), value.strip()
        lname = name.lower()
        if lname == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif lname == "content-length" and value.isdigit():
            length = int(value)
        msg.headers.append((name, value))
    if chunked:
        msg.body, msg.body_complete = _dechunk(body)
        if msg.body_complete:
            # Stored de-chunked: framed by a length a replayer can send. A cut body keeps the
            # headers it was sent with (the record is marked body_truncated).
            msg.headers = [(n, v) for n, v in msg.headers if n.lower() not in _FRAMING]
            if msg.body:
                msg.headers.append(("Content-Length", str(len(msg.body))))
    elif length is not None:
        msg.body = body[:length]
        msg.body_complete = len(body) >= length
    elif msg.status is not None:
        msg.body = body  # a response without framing: its body runs to the end
    # A request without Content-Length or chunking has no body (RFC 9112 6.3): anything after
    # its head is not part of it (e.g. the start of a torn GoReplay separator).
    msg.body_complete = msg.body_complete and msg.head_complete
    return msg


def origin_form(target: str) -> str:
    """:func:`hlthz.net.request_target`, raising a ``ValueError`` that quotes nothing (the
    standard library's URL errors quote the host, which may hold a secret)."""
    try:
        return request_target(target)
    except ValueError:
        raise ValueError("the request target is not a valid URL") from None


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_UNSAFE_IN_TARGET = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")


def _escape_target(path: str) -> str:
    # A request line is METHOD SP TARGET SP VERSION: a space, a line break or a non-ASCII
    # character in the target would end it early or inject a header. Percent-encode them
    # (UTF-8), as a browser would; everything else is sent as captured.
    return _UNSAFE_IN_TARGET.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogatepass")),
        path,
    )


def build_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A raw HTTP/1.1 request with a ``Content-Length`` matching ``body``.

    The target is percent-escaped where HTTP/1.1 cannot carry it as is; a method or header name
    that is no HTTP token, or a header value with a line break, raises ``ValueError`` (naming
    the header, never quoting a value): written verbatim they would inject headers.
    """
    if not _TOKEN.match(method):
        raise ValueError("the method is not an HTTP method token (like GET)")
    lines = [f"{method} {_escape_target(path) or '/'} HTTP/1.1"]
    for name, value in headers:
        if not _TOKEN.match(name):
            raise ValueError("a header name is not an HTTP token")
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError(f"header {name}: the value contains a line break or NUL")
        lname = name.lower()
        if lname in _FRAMING:
            continue
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def build_response(status: int) -> bytes:
    """A minimal raw response carrying only the original status (GoReplay type 2 payload)."""
    return f"HTTP/1.1 {status} -\r\nContent-Length: 0\r\n\r\n".encode("ascii")
