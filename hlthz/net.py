"""Addresses and URLs as users type them: ``HOST:PORT``, ``http://host:port/base``, request paths.

Every option that takes an address goes through these functions, so each accepts the same forms
(``127.0.0.1:8080``, ``[::1]:8080``, ``:8080``) and rejects the same mistakes with one line
naming the option (``what``): a port out of range or not a number, an unclosed IPv6 bracket,
whitespace or control characters (a CR/LF in a URL would inject a header line downstream).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from hlthz.errors import UsageError

__all__ = [
    "HOP_BY_HOP",
    "LOOPBACK",
    "HttpUrl",
    "format_host_port",
    "parse_host_port",
    "parse_http_url",
    "request_target",
]

LOOPBACK = "127.0.0.1"
# scheme://authority of an absolute-form target: everything up to the path, query or fragment.
_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")

#: Hop-by-hop headers (RFC 9110 section 7.6.1, plus the non-standard ``proxy-connection``): they
#: describe one connection, so a proxy or a replay never forwards them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def _reject_unprintable(text: str, what: str) -> None:
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise UsageError(f"{what} {_shown(text)}: contains whitespace or control characters")


def _shown(text: str) -> str:
    # Bounded: an error about a 50 MB argument must not print 50 MB.
    return repr(text if len(text) <= 80 else text[:77] + "...")


def parse_host_port(
    text: str, *, what: str, default_host: str = LOOPBACK, allow_port_zero: bool = False
) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``.

    ``[::1]:80`` is IPv6 (brackets removed); ``:8080`` means ``default_host``. Port 0 ("any
    free port") only with ``allow_port_zero``. Raises :class:`~hlthz.errors.UsageError` naming
    ``what`` (the option or field) otherwise.
    """
    example = "127.0.0.1:8080" + (" (port 0: any free port)" if allow_port_zero else "")
    _reject_unprintable(text, what)
    host, sep, port = text.rpartition(":")
    if host.startswith("["):
        if not host.endswith("]"):
            raise UsageError(f"{what} {_shown(text)}: unclosed '[' in an IPv6 address")
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"{what} {_shown(text)}: write an IPv6 address in brackets, [::1]:8080")
    lowest = 0 if allow_port_zero else 1
    if not sep or not port.isdigit() or not lowest <= int(port) <= 65535:
        raise UsageError(f"{what} {_shown(text)}: give HOST:PORT, e.g. {example}")
    return host or default_host, int(port)


def format_host_port(host: str, port: int) -> str:
    """The inverse of :func:`parse_host_port`: IPv6 hosts get their brackets back."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class HttpUrl:
    """An ``http://`` or ``https://`` URL, checked: ``base`` is its path without a trailing
    slash, ``origin`` is ``scheme://host:port`` as typed."""

    url: str
    scheme: str
    host: str
    port: int
    base: str
    origin: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_port(self) -> str:
        return format_host_port(self.host, self.port)


def parse_http_url(text: str, *, what: str) -> HttpUrl:
    """Check an absolute http(s) URL; raise :class:`~hlthz.errors.UsageError` naming ``what``."""
    hint = "give an absolute http:// or https:// URL, e.g. http://127.0.0.1:8000"
    _reject_unprintable(text, what)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ":abc"
        raise UsageError(f"{what} {_shown(text)}: {exc}; {hint}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what} {_shown(text)}: {hint}")
    if port == 0:
        raise UsageError(f"{what} {_shown(text)}: port 0 cannot be connected to; {hint}")
    return HttpUrl(
        url=text,
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        base=parts.path.rstrip("/"),
        origin=f"{parts.scheme}://{parts.netloc}",
    )


def request_target(target: str) -> str:
    """The origin-form ``/path?query`` of a request target.

    Absolute-form targets (``http://host/x``, a proxy request) lose scheme, host and any
    userinfo, so a replay only ever talks to its own target; the fragment is dropped (it is
    never sent); an empty or relative path gets its leading ``/``. ``//x`` stays a path (HTTP
    has no network-path form); the asterisk form (``OPTIONS *``) stays ``*``.
    """
    if target == "*":
        return target
    if target.lower().startswith(("http://", "https://")):
        # Split by hand, not with urlsplit: a malformed authority (``http://[x/``) must not
        # raise, and nothing of the authority (host, user info) may survive.
        target = _AUTHORITY.sub("", target)
    target = target.split("#", 1)[0]
    return target if target.startswith("/") else "/" + target
