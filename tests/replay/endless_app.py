"""A loopback target whose answers never end: ``python -m tests.replay.endless_app PORT``.

``GET /flood/...`` answers 200 with a chunked body streamed as fast as the socket takes it, for
ever; ``GET /trickle/...`` answers 200 and then sends one byte of body every 50 ms, for ever.
The replay engine must cut the first off at its body cap and abandon the second at its
deadline, counting each as a failure, and end.
"""

from __future__ import annotations

import asyncio
import sys

_CHUNK = b"x" * 65536
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1]
        writer.write(_HEAD)
        if path.startswith(b"/trickle"):
            while True:
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        while True:
            writer.write(b"%x\r\n%s\r\n" % (len(_CHUNK), _CHUNK))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError):
        pass
    finally:
        writer.close()


async def _main(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
