"""Nothing lost under faults: the forwarding app on two real clusters (Tansu), with worker
processes, under a slice of `make faults`'s matrix with small streams: 1 (with each way of
writing the handler, the Rust app's included), 3, 6, 7, 8, 9 for 8 s, 10, 11, 12, 13, 14 and
15 (the full sizes, the other cells and the other scenarios are in `make faults`). Counted by
reading the topics back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "faults"))

import harness
import workers

SIZE = 2000
workers.RUST_PROFILE = "dev"  # the profile `cargo test` built already


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "scenario",
    [
        "1 destination killed",  # past the producer's message timeout, then restarted
        # The same outage with the handler written each other way users write it.
        "1 destination killed, task",
        "1 destination killed, dynamic",
        "1 destination killed, batch",
        "1 destination killed, defaults",
        "1 destination killed, rust",
        "3 worker SIGKILLed",  # then started again
        "9 destination blackholed 8 s",  # past the message timeout
        "11 secure destination killed",  # SASL SCRAM over TLS
        "12 rebalance storm",  # `fastkafka run` hosts started, SIGTERMed, SIGKILLed
        # Hosts of their own grow from one to three and back; ready hosts hold each partition
        # exactly once at every step.
        "13 hosts grow and shrink",
        # A cluster lost for good: the app moves to its standby (and back when it returns).
        "14 source lost, standby takes over",
        "15 destination lost, standby takes over",
    ],
)
async def test_a_fault_mid_stream_loses_nothing(scenario: str) -> None:
    # The storm's hosts come and go every 2 to 4 s: items take longer, so that it strikes
    # mid-stream. 13's steps take some 10 s each: a longer stream (its items take 10 ms).
    number = scenario.split()[0]
    item_delay = 0.02 if number == "12" else 0.002
    size = 12_000 if number == "13" else SIZE
    row = await harness.run(scenario, size, 0, item_delay)
    assert row.out_at_fault is not None and row.out_at_fault < size, "struck mid-stream"
    assert (row.lost, row.delivered) == (0, size), row


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "scenario",
    ["6 poison", "10 dead-letter cluster killed"],  # the second with its letters' cluster down
)
async def test_poison_is_dead_lettered_and_everything_else_delivered(scenario: str) -> None:
    row = await harness.run(scenario, SIZE, 500)
    poison = len(harness.poison_records(500))
    assert (row.lost, row.delivered, row.dead_lettered) == (0, SIZE, poison), row
    assert row.records_in == SIZE + poison


@pytest.mark.timeout(300)
async def test_records_failing_twice_are_delivered_once_in_each_keys_order() -> None:
    row = await harness.run("7 handler fails twice", SIZE, 0)
    assert (row.lost, row.delivered, row.duplicated) == (0, SIZE, 0), row
    for key, ids in row.order_by_key.items():
        assert ids == sorted(ids), f"key {key!r} out of order"


@pytest.mark.timeout(300)
async def test_a_stop_with_the_destination_down_ends_within_its_timeout_and_loses_nothing() -> None:
    row = await harness.run("8 SIGTERM, destination down", SIZE, 0)
    assert row.stop_status == 0, row
    assert row.stop_seconds is not None and row.stop_seconds < 10, row
    assert (row.lost, row.delivered) == (0, SIZE), row
