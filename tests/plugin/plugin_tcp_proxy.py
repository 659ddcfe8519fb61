"""A loopback TCP forwarder that tests can cut, freeze and re-point, to break connections on purpose.

The client connects to the proxy; the proxy opens a connection to ``target_port`` per client
connection and copies bytes both ways. ``cut()`` aborts every open pair (the server sees a
dropped client, the client a dropped server); ``freeze_after(text)`` passes server frames on
until the first text frame containing ``text`` and discards everything after it, so a test can
stop the client hearing about a job at an exact point however fast the server is; and
``target_port`` can change so reconnects reach another server. Like a reverse proxy, it rewrites
the upgrade request's ``Host`` to name the server it forwards to (the server checks its port).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct

TEXT_OPCODE = 1


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.connections = 0
        self.frozen = False
        self._freeze_marker: bytes | None = None
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

    def freeze_after(self, text: str) -> None:
        """Pass server frames on up to the first text frame containing ``text``; drop all after it."""
        self._freeze_marker = text.encode()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        target = self.target_port
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        host = f"{self.host}:{target}".encode()
        for task in (self._pipe(reader, up_writer, downstream=False, host=host),
                     self._pipe(up_reader, writer, downstream=True)):
            t = asyncio.get_running_loop().create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool, host: bytes = b""
    ) -> None:
        pending = b""
        handshake_done = False
        with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
            if not downstream:  # the upgrade request: name the server's own address in Host
                request = b""
                while b"\r\n\r\n" not in request and (chunk := await reader.read(65536)):
                    request += chunk
                writer.write(re.sub(rb"(?im)^host:[^\r\n]*", b"Host: " + host, request, count=1))
                await writer.drain()
            while data := await reader.read(65536):
                if not downstream or self._freeze_marker is None:
                    if not (downstream and self.frozen):
                        writer.write(data)
                        await writer.drain()
                    continue
                pending += data
                if not handshake_done:  # the HTTP 101 response comes before any frame
                    end = pending.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    writer.write(pending[: end + 4])
                    pending, handshake_done = pending[end + 4 :], True
                pending = self._forward_frames(pending, writer)
                await writer.drain()
        writer.transport.abort()

    def _forward_frames(self, buffer: bytes, writer: asyncio.StreamWriter) -> bytes:
        """Forward each complete (unmasked, server) frame until the marker frame; return the rest."""
        while not self.frozen:
            size = _frame_size(buffer)
            if size is None:
                return buffer
            frame, buffer = buffer[:size], buffer[size:]
            writer.write(frame)
            if frame[0] & 0x0F == TEXT_OPCODE and self._freeze_marker and self._freeze_marker in frame:
                self.frozen, self._freeze_marker = True, None
        return b""


def _frame_size(buffer: bytes) -> int | None:
    """Length of the first complete WebSocket frame in ``buffer`` (RFC 6455 5.2), None if incomplete."""
    if len(buffer) < 2:
        return None
    length, offset = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, offset = struct.unpack_from(">H", buffer, 2)[0], 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, offset = struct.unpack_from(">Q", buffer, 2)[0], 10
    if buffer[1] & 0x80:
        offset += 4  # masked (never from a server, but harmless)
    total = offset + length
    return total if len(buffer) >= total else None
