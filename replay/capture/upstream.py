"""A small HTTP/1.1 client on asyncio streams: the recording proxy's side towards the upstream.

It does only what a reverse proxy needs, and does it in one pass with no per-request objects
beyond the parsed head: a pool of kept-alive connections, the request head written in one
``write``, bodies streamed both ways (``Content-Length``, chunked, or until close), 1xx interim
responses skipped, timeouts on connect and on every read or drain. A general-purpose client
(httpx) costs about a millisecond per request here; this costs a tenth of that.

Framing follows RFC 9112 section 6: no body for ``HEAD`` and for 1xx/204/304 responses; else
chunked when ``Transfer-Encoding`` says so, else ``Content-Length``, else until the upstream
closes (then the connection is not reused).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["UpstreamPool", "UpstreamResponse", "_UpstreamError", "_UpstreamTimeout"]

_MAX_HEAD = 1 << 20
_T = TypeVar("_T")


class _UpstreamError(Exception):
    """The upstream refused, reset or sent something that is not HTTP/1.x (answer 502)."""


class _UpstreamTimeout(_UpstreamError):
    """The upstream did not connect or answer within the timeout (answer 504)."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False

    def close(self) -> None:
        self.writer.close()


@dataclass
class UpstreamResponse:
    """A response whose head is read; iterate :meth:`body` once, then :meth:`release`."""

    status: int
    headers: list[tuple[bytes, bytes]]
    _pool: UpstreamPool
    _conn: _Connection | None
    _length: int | None  # None: chunked (-1: until close)
    _chunked: bool
    _reusable: bool
    _done: bool = field(default=False)

    async def body(self) -> AsyncIterator[bytes]:
        """The body, de-chunked, as it arrives."""
        conn = self._conn
        assert conn is not None
        reader, timeout = conn.reader, self._pool.timeout
        try:
            if self._chunked:
                while True:
                    line = await _wait(reader.readuntil(b"\r\n"), timeout)
                    size = int(line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while (await _wait(reader.readuntil(b"\r\n"), timeout)) != b"\r\n":
                            pass  # trailers are not forwarded
                        break
                    remaining = size
                    while remaining:
                        data = await _wait(reader.read(min(remaining, 1 << 16)), timeout)
                        if not data:
                            raise _UpstreamError("upstream closed in the middle of a chunk")
                        remaining -= len(data)
                        yield data
                    await _wait(reader.readexactly(2), timeout)
            elif self._length is not None and self._length >= 0:
                remaining = self._length
                while remaining:
                    data = await _wait(reader.read(min(remaining, 1 << 16)), timeout)
                    if not data:
                        raise _UpstreamError("upstream closed before the end of the body")
                    remaining -= len(data)
                    yield data
            else:
                while data := await _wait(reader.read(1 << 16), timeout):
                    yield data
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise _UpstreamError(f"bad response body: {exc}") from None
        except OSError as exc:
            raise _UpstreamError(str(exc)) from None
        self._done = True

    def release(self) -> None:
        """Return the connection to the pool when the body was read whole, else close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._release(conn, self._done and self._reusable)


async def _wait(awaitable: Awaitable[_T], timeout: float) -> _T:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise _UpstreamTimeout(f"no answer within {timeout:g} s") from None


class UpstreamPool:
    """Kept-alive connections to one upstream ``http(s)://host:port``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 100,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default = 443 if self.tls else 80
        self.host_header = (
            parts.netloc.rsplit("@", 1)[-1] if self.port != default else self.host
        ).encode("idna")
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._ssl = ssl.create_default_context() if self.tls else None
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                    limit=_MAX_HEAD,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise _UpstreamTimeout(f"connect timed out after {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise _UpstreamError(exc.strerror or str(exc)) from None
        return _Connection(reader, writer)

    def _release(self, conn: _Connection, reusable: bool) -> None:
        self._slots.release()
        if reusable and not conn.reader.at_eof():
            conn.reused = True
            self._idle.append(conn)
        else:
            conn.close()

    async def _acquire(self) -> _Connection:
        await self._slots.acquire()
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        try:
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        *,
        content_length: int | None,
    ) -> UpstreamResponse:
        """Send a request (``body`` streamed; chunked when ``content_length`` is None) and read
        the response head. A bodiless request on a kept-alive connection the upstream closed
        meanwhile is retried once on a new connection."""
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), b"host: ", self.host_header]
        for name, value in headers:
            head += (b"\r\n", name, b": ", value)
        if body is not None:
            head.append(
                b"\r\ntransfer-encoding: chunked"
                if content_length is None
                else b"\r\ncontent-length: " + str(content_length).encode()
            )
        head.append(b"\r\n\r\n")
        raw_head = b"".join(head)
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                conn.writer.write(raw_head)
                if body is not None:
                    await self._send_body(conn, body, chunked=content_length is None)
                else:
                    await _wait(conn.writer.drain(), self.timeout)
                return await self._read_head(conn, method)
            except (_UpstreamError, asyncio.IncompleteReadError, OSError) as exc:
                reused = conn.reused
                self._release(conn, False)
                stale = isinstance(exc, asyncio.IncompleteReadError | ConnectionError)
                if attempt == 1 and reused and body is None and stale:
                    continue  # the upstream closed an idle connection just as we used it
                if isinstance(exc, _UpstreamError):
                    raise
                raise _UpstreamError(str(exc) or type(exc).__name__) from None
            except BaseException:
                self._release(conn, False)
                raise
        raise AssertionError("unreachable")

    async def _send_body(
        self, conn: _Connection, body: AsyncIterator[bytes], chunked: bool
    ) -> None:
        writer = conn.writer
        async for chunk in body:
            if not chunk:
                continue
            if chunked:
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                writer.write(chunk)
            await _wait(writer.drain(), self.timeout)
        if chunked:
            writer.write(b"0\r\n\r\n")
        await _wait(writer.drain(), self.timeout)

    async def _read_head(self, conn: _Connection, method: str) -> UpstreamResponse:
        while True:
            try:
                raw = await _wait(conn.reader.readuntil(b"\r\n\r\n"), self.timeout)
            except asyncio.LimitOverrunError:
                raise _UpstreamError("response head larger than 1 MiB") from None
            lines = raw[:-4].split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise _UpstreamError("not an HTTP/1.x response")  # never quoted: may be a secret
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue  # interim responses (100 Continue, 103 Early Hints) are not forwarded
            break
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = -1
        chunked = False
        reusable = parts[0] == b"HTTP/1.1"
        for number, line in enumerate(lines[1:], 2):
            name, sep, value = line.partition(b":")
            if not sep:
                raise _UpstreamError(f"line {number} of the response head has no ':'")
            name, value = name.strip(), value.strip()
            lname = name.lower()
            if lname == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise _UpstreamError("the response's Content-Length is not a number") from None
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    reusable = False
                elif b"keep-alive" in tokens:
                    reusable = True
            headers.append((name, value))
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length, chunked = 0, False
        elif chunked:
            length = None
        elif length == -1:
            reusable = False  # delimited by the upstream closing the connection
        return UpstreamResponse(status, headers, self, conn, length, chunked, reusable)

    async def aclose(self) -> None:
        """Close the idle connections."""
        while self._idle:
            self._idle.pop().close()
