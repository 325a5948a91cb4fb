"""Serving ``/metrics``: content negotiation, gzip, optional bearer/basic auth, multiprocess.

:class:`Exposition` turns one scrape (its ``Accept``, ``Accept-Encoding`` and
``Authorization`` headers) into a status, headers and a body; the WSGI and ASGI middleware and
:func:`metrics_app` only adapt it to their protocol. In multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set) every scrape reads the directory through a fresh registry,
after folding dead workers' files into the archive (see :mod:`hlthz.exporter.multiprocess`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from hlthz.errors import ConfigError

#: ``metrics_auth``: a bearer token, a ``(user, password)`` pair for basic auth, or ``None``.
MetricsAuth = str | tuple[str, str] | None

Headers = list[tuple[str, str]]


class Exposition:
    """Renders the metrics of ``registry`` for one scrape."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        auth: MetricsAuth = None,
        multiprocess_dir: str | None = None,
        gzip_level: int = 6,
    ) -> None:
        from hlthz.exporter import multiprocess

        self.registry = REGISTRY if registry is None else registry
        self._auth = _check_auth(auth)
        self._multiprocess_dir = multiprocess_dir or multiprocess.active_dir()
        self._gzip_level = gzip_level

    def render(
        self,
        *,
        accept: str | None = None,
        accept_encoding: str | None = None,
        authorization: str | None = None,
        head: bool = False,
    ) -> tuple[int, Headers, bytes]:
        """``(status, headers, body)`` of the scrape described by the request headers."""
        if self._auth is not None and not _authorized(self._auth, authorization):
            scheme = "Bearer" if isinstance(self._auth, str) else 'Basic realm="metrics"'
            return (
                401,
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", scheme)],
                b"unauthorized\n",
            )
        encoder, content_type = choose_encoder(accept or "")
        body = encoder(self._scrape_registry())
        headers: Headers = [("Content-Type", content_type), ("Vary", "Accept-Encoding")]
        if accept_encoding and _accepts_gzip(accept_encoding):
            body = gzip.compress(body, compresslevel=self._gzip_level)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        return 200, headers, b"" if head else body

    def _scrape_registry(self) -> Any:
        if self._multiprocess_dir is None:
            return self.registry
        from hlthz.exporter import multiprocess

        return multiprocess.scrape_registry(self._multiprocess_dir)

    # -- protocol adapters ------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer a WSGI request with the metrics."""
        status, headers, body = self.render(
            accept=environ.get("HTTP_ACCEPT"),
            accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
            authorization=environ.get("HTTP_AUTHORIZATION"),
            head=environ.get("REQUEST_METHOD") == "HEAD",
        )
        start_response(f"{status} {'OK' if status == 200 else 'Unauthorized'}", headers)
        return [body]

    async def asgi(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Answer an ASGI HTTP request with the metrics (lifespan acknowledged, others ignored)."""
        kind = scope.get("type")
        if kind == "lifespan":
            # Served alone (``metrics_app(asgi=True)`` under uvicorn), it gets lifespan events.
            while True:
                message = await receive()
                if message.get("type") == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message.get("type") == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        wanted: dict[bytes, str | None] = {
            b"accept": None,
            b"accept-encoding": None,
            b"authorization": None,
        }
        for name, value in scope.get("headers") or ():
            lower = bytes(name).lower()
            if lower in wanted:
                wanted[lower] = bytes(value).decode("latin-1")
        status, headers, body = self.render(
            accept=wanted[b"accept"],
            accept_encoding=wanted[b"accept-encoding"],
            authorization=wanted[b"authorization"],
            head=scope.get("method") == "HEAD",
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


def metrics_app(
    registry: CollectorRegistry | None = None, *, auth: MetricsAuth = None, asgi: bool = False
) -> Any:
    """A stand-alone WSGI (default) or ASGI application serving the metrics of ``registry``.

    Use it when ``/metrics`` must be served on another port or by another server than the app;
    ``instrument(app)`` serves ``/metrics`` itself otherwise.
    """
    exposition = Exposition(registry, auth=auth)
    return exposition.asgi if asgi else exposition.wsgi


def _accepts_gzip(accept_encoding: str) -> bool:
    """True when ``Accept-Encoding`` lists ``gzip`` without ``q=0`` (RFC 9110: q=0 refuses)."""
    for item in accept_encoding.lower().split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if coding != "gzip":
            continue
        for param in params:
            name, _, raw = param.partition("=")
            if name.strip() == "q":
                try:
                    return float(raw) > 0
                except ValueError:
                    return False
        return True
    return False


def _check_auth(auth: Any) -> MetricsAuth:
    if auth is None:
        return None
    if isinstance(auth, str) and auth:
        return auth
    if (
        isinstance(auth, tuple)
        and len(auth) == 2
        and all(isinstance(part, str) and part for part in auth)
        and ":" not in auth[0]
    ):
        return (auth[0], auth[1])
    raise ConfigError(
        "metrics_auth must be a bearer token (a non-empty string) or a (user, password) pair "
        "of non-empty strings without ':' in the user name"
    )


def _authorized(auth: str | tuple[str, str], header: str | None) -> bool:
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if isinstance(auth, str):
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.encode(), auth.encode()
        )
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    # Compare both parts, always, so timing does not reveal which one was wrong.
    ok_user = hmac.compare_digest(user.encode(), auth[0].encode())
    ok_password = hmac.compare_digest(password.encode(), auth[1].encode())
    return bool(sep) and ok_user and ok_password
