"""Hostile text frames (issue 10): lone surrogates get an error and the connection lives on;
invalid UTF-8 is a WebSocket-level fault that RFC 6455 closes with 1007 (SPEC.md 2)."""

from __future__ import annotations

import asyncio

import pytest
from latentbrush.protocol import QueryQueue
from server_harness import TestClient, job, running_server, submit
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode


def run(coro) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"type":"query_queue","\\ud800":1}', "\\ud800"),
        ('{"type":"submit","job":{"id":"j1","\\udc00":1}}', "job.\\udc00"),
    ],
)
def test_lone_surrogate_member_gets_an_error_and_the_connection_stays(text: str, field: str) -> None:
    async def scenario() -> None:
        async with running_server() as server, TestClient.connect(server.url) as client:
            await client.ws.send(text)  # ASCII on the wire; the JSON escape decodes to a lone surrogate
            error = await client.recv()
            assert (type(error).TYPE, error.code, error.field) == ("error", "unknown_field", field)
            await client.send(QueryQueue())  # the same connection still answers
            assert type(await client.next_other()).TYPE == "queue"
            await client.send(submit(job("after", steps=1)))
            assert type((await client.finish("after")).final).TYPE == "done"

    run(scenario())


def test_invalid_utf8_text_frame_closes_with_1007() -> None:
    async def scenario() -> None:
        async with running_server() as server:
            async with TestClient.connect(server.url) as client:
                # websockets' send() would refuse to build this frame: write it below the API
                frame = Frame(Opcode.TEXT, b'{"type":"cancel","job_id":"\xff"}')
                client.ws.protocol.send_frame(frame)
                client.ws.send_data()
                with pytest.raises(ConnectionClosed) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
            async with TestClient.connect(server.url) as good:  # the server lives on
                await good.send(submit(job("still", steps=1)))
                assert type((await good.finish("still")).final).TYPE == "done"

    run(scenario())
