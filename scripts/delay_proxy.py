"""A TCP proxy that delays every byte by a fixed time each way, for benchmarks of a distant
cluster (no `tc netem` here): what a client sends reaches the broker DELAY_MS later, and the
broker's answers reach the client DELAY_MS after that, in order and at full bandwidth. The
broker advertises the proxy's address, so every connection goes through it
(`local_kafka.delay_proxy`).

    python scripts/delay_proxy.py --listen PORT --target HOST:PORT --delay-ms 25
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools

from tls_proxy import serve


async def delayed_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copies `reader` to `writer`, each chunk written `delay` seconds after it was read."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def write_when_due() -> None:
        with contextlib.suppress(ConnectionError):
            while data := (chunk := await chunks.get())[1]:
                if (wait := chunk[0] - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    writing = asyncio.create_task(write_when_due())
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, data))
    chunks.put_nowait((0.0, b""))  # the end, after what is queued
    await writing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    arguments = parser.parse_args()
    delay = arguments.delay_ms / 1000
    copy = functools.partial(delayed_pipe, delay=delay)
    asyncio.run(serve(arguments.listen, arguments.target, None, copy))


if __name__ == "__main__":
    main()
