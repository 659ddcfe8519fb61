"""A loopback TCP forwarder that tests can cut, freeze and re-point, to break connections on purpose.

The client connects to the proxy; the proxy opens a connection to ``target`` per client
connection and copies bytes both ways. ``cut()`` aborts every open pair (the server sees a
dropped client, the client a dropped server), ``freeze()`` stops delivering server bytes to
the client (they are discarded), and ``target`` can change so reconnects reach another server.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.connections = 0
        self.frozen = False
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        port = self._server.sockets[0].getsockname()[1] if self._server else 0
        return f"ws://{self.host}:{port}"

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        return self.url

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """Abort every open connection, both sides, at once."""
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()
        self.frozen = False

    def freeze(self) -> None:
        """From now on, drop what the server sends instead of passing it to the client."""
        self.frozen = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        for task in (self._pipe(reader, up_writer, downstream=False), self._pipe(up_reader, writer, downstream=True)):
            t = asyncio.get_running_loop().create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if downstream and self.frozen:
                    continue
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
