"""A TCP proxy in front of a broker that can turn into a black hole: while it is one, it keeps
every connection open and accepts new ones but moves no byte either way, as a network that drops
packets does (no `tc netem` here). Bytes are held, not dropped — TCP would retransmit them — so
a connection that survives the outage goes on where it was; clients that give up on it
(librdkafka's request and socket timeouts) reconnect, through the proxy again.

Runs in the harness's event loop: `await BlackholeProxy.start(target_port)`, then `.blackhole()`
and `.restore()`.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["BlackholeProxy"]

CHUNK = 64 * 1024


class BlackholeProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` while not a black hole."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        # Set while bytes move; cleared while the proxy is a black hole.
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, target_port: int) -> BlackholeProxy:
        proxy = cls(target_port)
        proxy._server = await asyncio.start_server(proxy._connected, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blackhole(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _connected(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        await self._flowing.wait()  # a connection attempt into the black hole goes nowhere
        try:
            broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return
        for source, sink in ((client_in, broker_out), (broker_in, client_out)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                chunk = await source.read(CHUNK)
                if not chunk:
                    break
                await self._flowing.wait()  # read before the outage: held until it ends
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.close()
