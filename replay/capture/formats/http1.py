"""Parse and build raw HTTP/1.x messages, as found in GoReplay files.

Only what the importers and the exporter need: split head from body, read the request or status
line and the headers, undo ``Transfer-Encoding: chunked`` so a record holds the plain body.
"""

from __future__ import annotations

__all__ = ["ParsedMessage", "build_request", "build_response", "parse_message"]

# Framing headers: a record holds the decoded body, so the writer frames it anew.
_FRAMING = frozenset(("transfer-encoding", "content-length"))


class ParsedMessage:
    """A parsed request (``method``/``target``) or response (``status``)."""

    __slots__ = ("body", "headers", "method", "status", "target", "version")

    def __init__(self) -> None:
        self.method = ""
        self.target = ""
        self.status: int | None = None
        self.version = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""


def _dechunk(data: bytes) -> bytes:
    """Decode a chunked body; a body cut short (as sniffers often see it) keeps what arrived."""
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
            break
        start = end + 2
        out += data[start : start + size]
        pos = start + size + 2
    return bytes(out)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one HTTP/1.x request or response; raise ``ValueError`` saying what is wrong."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")  # tolerate bare LF, as some tools write
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    first = lines[0].decode("latin-1")
    msg = ParsedMessage()
    parts = first.split(" ", 2)
    if first.startswith("HTTP/"):
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"bad status line {first[:80]!r}")
        msg.version, msg.status = parts[0], int(parts[1])
    else:
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[0].isalpha():
            raise ValueError(f"bad request line {first[:80]!r}")
        msg.method, msg.target, msg.version = parts[0].upper(), parts[1], parts[2]
    chunked = False
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise ValueError(f"bad header line {line[:80]!r}")
        name, value = name.strip(), value.strip()
        if name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
            continue
        msg.headers.append((name, value))
    msg.body = _dechunk(body) if chunked else body
    if chunked:
        msg.headers = [(n, v) for n, v in msg.headers if n.lower() != "content-length"]
        if msg.body:
            msg.headers.append(("Content-Length", str(len(msg.body))))
    return msg


def build_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A raw HTTP/1.1 request with a ``Content-Length`` matching ``body``."""
    lines = [f"{method} {path} HTTP/1.1"]
    for name, value in headers:
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
