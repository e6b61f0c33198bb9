"""The app `make faults` puts under faults: the guide's forwarding app — consume `in` on cluster
1, produce each item to `out` on cluster 2 with the same key — with a retry policy and a
dead-letter topic (`in_dlt`, on cluster 1, or on FAULTS_DLT's cluster when set). Clusters come
from FAULTS_SOURCE / FAULTS_DEST (host:port); FAULTS_FLAKY=1 makes every 97th item fail twice
before it goes through (however the handler is written); FAULTS_ITEM_DELAY (seconds, default
0) is spent per item, so that a fault lands mid-stream. FAULTS_DEST_SECURITY holds the
destination's security options as JSON (FastKafka's names), when it requires them;
FAULTS_ASSIGNMENT the group's partition assignment strategy, when not librdkafka's default.
FAULTS_SOURCE_STANDBY / FAULTS_DEST_STANDBY (host:port) name each cluster's standby, which the
app fails over to after 8 s with a 2 s rewind: as the guide advises, above the consumers'
session timeout (6 s) and below the producer's message timeout, which is then 30 s.

FAULTS_SHAPE picks how the handler is written, for the fault matrix: `guide` (the default: one
item at a time, awaiting its send), `task` (starts a task that sends five item delays later and
returns), `dynamic` (DynamicTaskExecutor, 8 at a time), `batch` (a batch consumer sending a
keyed list per key), `defaults` (the guide's handler without retry policy or dead-letter
topic), `shared` (two consumers of one group sharing the destination topic). The shape `rust` is
this app written with the Rust API, `examples/fault_app.rs`, which the harness runs instead."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from items import Item, key_of

from fastkafka import FastKafka, KafkaEvent, RetryPolicy
from fastkafka.executors import DynamicTaskExecutor, SequentialExecutor


def brokers(address: str, standby: str | None = None) -> dict[str, dict[str, Any]]:
    host, port = address.rsplit(":", 1)
    entry: dict[str, Any] = {"url": host, "port": int(port)}
    if standby is not None:
        standby_host, standby_port = standby.rsplit(":", 1)
        entry["standby"] = {"url": standby_host, "port": int(standby_port)}
    return {"development": entry}


SOURCE = brokers(os.environ["FAULTS_SOURCE"], os.environ.get("FAULTS_SOURCE_STANDBY"))
DEST = brokers(os.environ["FAULTS_DEST"], os.environ.get("FAULTS_DEST_STANDBY"))
STANDBYS = "FAULTS_DEST_STANDBY" in os.environ
FAILOVER = {"failover_after": 8.0, "failover_rewind": 2.0}


FLAKY = os.environ.get("FAULTS_FLAKY") == "1"
# The destination's security options (FastKafka's names, as JSON), when it requires them.
DEST_SECURITY: dict[str, str] = json.loads(os.environ.get("FAULTS_DEST_SECURITY", "{}"))
ITEM_DELAY = float(os.environ.get("FAULTS_ITEM_DELAY", "0"))
FAST = {"fetch_max_wait_ms": 20, "session_timeout_ms": 6000, "heartbeat_interval_ms": 500}

app = FastKafka(
    kafka_brokers=SOURCE,
    bootstrap_servers_id="development",
    **FAST,
    **FAILOVER,
)
failed_attempts: dict[int, int] = {}


# A destination that is down fails deliveries after 3 s (librdkafka's default: 300 s), so a
# fault scenario sees failed deliveries — and redeliveries — within its run; with a standby,
# records are moved to it before they time out.
MESSAGE_TIMEOUT = {"message.timeout.ms": 30_000 if STANDBYS else 3000}


@app.produces(topic="out", brokers=DEST, **MESSAGE_TIMEOUT, **DEST_SECURITY)
async def to_out(item: Item) -> KafkaEvent[Item]:
    return KafkaEvent(item, key=key_of(item.id))


SHAPE = os.environ.get("FAULTS_SHAPE", "guide")
FAILURES: dict[str, Any] = {
    "retry": RetryPolicy(attempts=3, backoff=0.05, max_backoff=1.0),
    "dead_letter_topic": "in_dlt",
}
if "FAULTS_DLT" in os.environ:  # the dead-letter topic on a cluster of its own
    FAILURES["dead_letter_brokers"] = brokers(os.environ["FAULTS_DLT"])
OPTIONS: dict[str, Any] = {
    "topic": "in",
    "group_id": "forwarders",
    "auto_commit_interval_ms": 1000,
    **({} if SHAPE == "defaults" else FAILURES),
}
if "FAULTS_ASSIGNMENT" in os.environ:  # the group's strategy (scenario 13: eager or not)
    OPTIONS["partition_assignment_strategy"] = os.environ["FAULTS_ASSIGNMENT"]


def fail_if_flaky(items: list[Item]) -> None:
    """With FAULTS_FLAKY, fails the first two attempts at every 97th item (each attempt at a
    batch counts for each of its items)."""
    if not FLAKY:
        return
    flaky = [item.id for item in items if item.id % 97 == 0]
    for item_id in flaky:
        failed_attempts[item_id] = failed_attempts.get(item_id, 0) + 1
    if any(failed_attempts[item_id] <= 2 for item_id in flaky):
        raise TimeoutError(f"items {flaky}: the downstream service timed out")


async def handle(item: Item) -> None:
    fail_if_flaky([item])
    if ITEM_DELAY:
        await asyncio.sleep(ITEM_DELAY)  # the work a real handler would do
    await to_out(item)


if SHAPE in ("guide", "defaults", "dynamic"):
    executor = DynamicTaskExecutor(size=8) if SHAPE == "dynamic" else SequentialExecutor()

    @app.consumes(executor=executor, **OPTIONS)
    async def on_in(item: Item) -> None:
        await handle(item)

elif SHAPE == "task":

    async def send_later(item: Item) -> None:
        await asyncio.sleep(ITEM_DELAY * 5)
        await to_out(item)

    @app.consumes(**OPTIONS)
    async def on_in(item: Item) -> None:
        fail_if_flaky([item])
        if ITEM_DELAY:
            await asyncio.sleep(ITEM_DELAY)  # the work a real handler would do
        # Sends after the handler returned, from a task tied to this input.
        asyncio.create_task(send_later(item))  # noqa: RUF006

elif SHAPE == "shared":
    # Two consumers in one group share `in`'s partitions and one destination topic (and its
    # producer client): each input waits only for its own outputs.

    @app.consumes(**OPTIONS)
    async def on_in(item: Item) -> None:
        await handle(item)

    @app.consumes(**OPTIONS)
    async def on_in_too(item: Item) -> None:
        await handle(item)

elif SHAPE == "batch":

    @app.produces(
        topic="out",
        brokers=DEST,
        **MESSAGE_TIMEOUT,
        **DEST_SECURITY,
    )
    async def to_out_many(items: list[Item]) -> KafkaEvent[list[Item]]:
        return KafkaEvent(items, key=key_of(items[0].id))

    @app.consumes(**OPTIONS)
    async def on_in(items: list[Item]) -> None:
        fail_if_flaky(items)
        if ITEM_DELAY:
            await asyncio.sleep(ITEM_DELAY * len(items))
        # One keyed batch per key, in the order they came: each key keeps its order on `out`.
        by_key: dict[bytes, list[Item]] = {}
        for item in items:
            by_key.setdefault(key_of(item.id), []).append(item)
        for same_key in by_key.values():
            await to_out_many(same_key)

else:
    raise ValueError(f"unknown FAULTS_SHAPE {SHAPE!r}")
