"""The faults `make faults` injects (see harness.py), one function per scenario: each starts
the workers it needs, strikes, and returns notes for the report; the harness then waits until
everything is accounted for and counts."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from blackhole import BlackholeProxy
from items import Item

if TYPE_CHECKING:
    from harness import Scenario, Stream

Fault = Callable[["Scenario", "Stream"], Awaitable[list[str]]]


async def destination_killed(scenario: Scenario, stream: Stream) -> list[str]:
    """1. The destination broker is killed (kill -9) mid-stream and restarted after longer
    than the producer's message timeout (3 s)."""
    scenario.start_worker()
    await scenario.strike_after(stream.items // 5)
    scenario.dest.kill()
    await asyncio.sleep(6)  # the outage itself: twice the producer's message timeout
    scenario.dest.start()
    return ["destination down 6 s (message.timeout.ms = 3 s)"]


async def source_killed(scenario: Scenario, stream: Stream) -> list[str]:
    """2. The source broker is killed (kill -9) mid-stream and restarted."""
    scenario.start_worker()
    await scenario.strike_after(stream.items // 5)
    scenario.source.kill()
    await asyncio.sleep(6)  # the outage itself
    scenario.source.start()
    return ["source down 6 s"]


async def worker_killed(scenario: Scenario, stream: Stream) -> list[str]:
    """3. The worker is SIGKILLed mid-stream and started again."""
    worker = scenario.start_worker()
    await scenario.strike_after(stream.items // 3)
    worker.signal(signal.SIGKILL)
    worker.wait()
    scenario.start_worker()
    return ["duplicates: what was handled since the last commit (every 1 s)"]


async def worker_terminated(scenario: Scenario, stream: Stream) -> list[str]:
    """4. SIGTERM mid-batch, then a restart."""
    worker = scenario.start_worker()
    await scenario.strike_after(stream.items // 3)
    worker.signal(signal.SIGTERM)
    code = worker.wait()
    scenario.start_worker()
    return [f"first worker exited {code}"]


async def worker_joins_and_leaves(scenario: Scenario, stream: Stream) -> list[str]:
    """5. A second worker joins and leaves mid-stream (rebalances with batches in flight)."""
    scenario.start_worker()
    await scenario.strike_after(stream.items // 5)
    second = scenario.start_worker()
    await second.until_started()
    await scenario.until_out_has(stream.items // 2)
    second.signal(signal.SIGTERM)
    code = second.wait()
    return [f"second worker exited {code}"]


async def poison(scenario: Scenario, stream: Stream) -> list[str]:
    """6. Poison in the stream: invalid JSON, wrong schema, tombstones, non-UTF-8 header
    values, a record whose output is over the size limit, random byte strings."""
    scenario.start_worker()
    return [f"{len(stream.poison)} poison records"]


async def flaky_handler(scenario: Scenario, stream: Stream) -> list[str]:
    """7. A handler that fails twice, then succeeds, for every 97th item."""
    scenario.start_worker(flaky=True)
    return ["every 97th item fails twice"]


async def stopped_with_destination_down(scenario: Scenario, stream: Stream) -> list[str]:
    """8. SIGTERM to `fastkafka run --stop-timeout 10` while the destination is down: the worker
    ends by itself within the stop timeout (the command kills none) and the command exits 0;
    outputs still undelivered leave their inputs uncommitted, so a restart with the destination
    back delivers them."""
    command = scenario.start_worker(cli_stop_timeout=10)
    await scenario.strike_after(stream.items // 5)
    scenario.dest.kill()
    await asyncio.sleep(2)  # the outage before the stop: outputs pile up for the destination
    stopping = time.monotonic()
    command.signal(signal.SIGTERM)
    scenario.stop_status = await asyncio.to_thread(command.wait, 60)
    scenario.stop_seconds = time.monotonic() - stopping
    killed = "Killed worker" in command.log.read_text(errors="replace")
    scenario.dest.start()
    scenario.start_worker()
    return [
        f"stopped in {scenario.stop_seconds:.1f} s (stop timeout 10 s), exit status "
        f"{scenario.stop_status}{', a worker was killed' if killed else ''}"
    ]


def destination_blackholed(seconds: float) -> Fault:
    """9. The destination is blackholed for ``seconds`` (a proxy in front of it, which the broker
    advertises, stops moving bytes without closing a connection), then restored."""

    async def fault(scenario: Scenario, stream: Stream) -> list[str]:
        scenario.proxy = proxy = await BlackholeProxy.start(scenario.dest.port)
        scenario.dest.stop()
        scenario.dest.advertised_url = f"tcp://{proxy.address}"
        scenario.dest.start()
        scenario.dest_address = proxy.address
        scenario.start_worker()
        await scenario.strike_after(stream.items // 5)
        proxy.blackhole()
        await asyncio.sleep(seconds)  # the outage itself
        proxy.restore()
        return [f"destination blackholed {seconds:.0f} s (message.timeout.ms = 3 s)"]

    return fault


async def dead_letter_cluster_killed(scenario: Scenario, stream: Stream) -> list[str]:
    """10. The dead-letter topic's own cluster is killed (kill -9) mid-stream, poison in the
    stream, and restarted: inputs whose letters cannot go are held back, not lost."""
    scenario.start_worker()
    await scenario.strike_after(stream.items // 5)
    scenario.dlt.kill()
    await asyncio.sleep(6)  # the outage itself
    scenario.dlt.start()
    return [f"dead-letter cluster down 6 s; {len(stream.poison)} poison records"]


def shaped(shape: str, fault: Fault) -> Fault:
    """``fault`` with the fault app's handler written as ``shape`` (fault_app.py)."""

    async def run(scenario: Scenario, stream: Stream) -> list[str]:
        scenario.shape = shape
        return [f"handler shape: {shape}", *await fault(scenario, stream)]

    return run


def poison_records(
    count: int, seed: int = 6
) -> list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    rng = random.Random(seed)
    fixed: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (b"p", b"{not json", []),
        (b"p", b'{"id": "seven", "payload": 1}', []),
        (b"p", b"", []),  # a tombstone
        (b"p", b'{"id": -5}', [("origin", b"\xff\xfe not utf-8")]),
        # Valid, but what the app would send for it is over the client's message.max.bytes
        # (1 MB): the handler fails, and so would the dead letter carrying it.
        (b"p", Item(id=-6, payload="y" * 1_200_000).model_dump_json().encode(), []),
    ]
    noise = {bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) for _ in range(count)}
    return fixed + [(None, value, []) for value in sorted(noise) if value not in (b"",)]


SCENARIOS: dict[str, Fault] = {
    "1 destination killed": destination_killed,
    "2 source killed": source_killed,
    "3 worker SIGKILLed": worker_killed,
    "4 worker SIGTERMed": worker_terminated,
    "5 worker joins and leaves": worker_joins_and_leaves,
    "6 poison": poison,
    "7 handler fails twice": flaky_handler,
    "8 SIGTERM, destination down": stopped_with_destination_down,
    "9 destination blackholed 8 s": destination_blackholed(8),
    "9 destination blackholed 35 s": destination_blackholed(35),
    "10 dead-letter cluster killed": dead_letter_cluster_killed,
    # The fault matrix: the same outage under each way a handler can be written.
    "1 destination killed, task": shaped("task", destination_killed),
    "1 destination killed, dynamic": shaped("dynamic", destination_killed),
    "1 destination killed, batch": shaped("batch", destination_killed),
    "1 destination killed, defaults": shaped("defaults", destination_killed),
    "1 destination killed, shared": shaped("shared", destination_killed),
}
