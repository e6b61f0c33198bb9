"""A TLS-terminating TCP proxy for tests: Tansu 0.6.0 accepts `--cert/--key` but does not use
them (its listener stays plain TCP), so the TLS tests put this in front of it, as a
TLS-terminating load balancer would be. Clients speak TLS to the proxy; the proxy speaks plain
TCP to the broker, which advertises the proxy's address. `serve` is the proxy itself, shared
with `delay_proxy.py`.

    python scripts/tls_proxy.py --listen PORT --target HOST:PORT --cert CERT --key KEY
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


Pipe = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(
    listen: int, target: str, context: ssl.SSLContext | None, copy: Pipe = pipe
) -> None:
    """Listens on 127.0.0.1:``listen`` (TLS with ``context``), connects each client to
    ``target`` and copies both ways with ``copy`` (the delay proxy's delays every chunk)."""
    host, port = target.rsplit(":", 1)

    async def connect(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(copy(client_reader, broker_writer), copy(broker_reader, client_writer))

    server = await asyncio.start_server(connect, "127.0.0.1", listen, ssl=context)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    arguments = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(arguments.cert, arguments.key)
    asyncio.run(serve(arguments.listen, arguments.target, context))


if __name__ == "__main__":
    main()
