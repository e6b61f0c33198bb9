"""``fastkafka offsets show|reset`` on a real cluster (Tansu): the groups ``fastkafka run``
uses, committed offsets and lag per partition, resets to earliest, by a shift and by time
(with ``--dry-run`` committing nothing), refused while the app runs.

Tansu's memory engine here: its sqlite engine drops the connection on DescribeGroups, which
the live-member check needs (there the reset is refused, saying it cannot tell). Records are
produced one request each: the memory engine's high watermark is the last request's first
offset + 1."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka_helpers import committed_offsets
from local_kafka import TansuBroker, local_clusters
from run_helpers import APPS, FASTKAFKA, stop_cleanly, two_workers

from fastkafka._offsets import parse_reset_target
from fastkafka.exceptions import ConfigError

GROUP = "counting_app:app.on_counted"  # what `fastkafka run counting_app:app` gives it


def offsets(cluster: TansuBroker, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FASTKAFKA, "offsets", *arguments, "--kafka-broker", "development", "counting_app:app"],
        cwd=APPS,
        env={
            **os.environ,
            "KAFKA_CLUSTER_1": cluster.bootstrap_servers,
            "COUNTING_APP_OUTPUT": os.devnull,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def table(output: str) -> dict[int, list[str]]:
    """The rows of a printed table by partition."""
    rows = [line.split() for line in output.splitlines() if line.startswith("  ")]
    return {int(row[0]): row[1:] for row in rows if row[0].isdigit()}


def committed(cluster: TansuBroker) -> dict[int, int | None]:
    return asyncio.run(committed_offsets(cluster.bootstrap_servers, GROUP, "counted", 2))


def produce_each(cluster: TansuBroker, numbers: range) -> None:
    """One request per record (see the module docs)."""

    async def sending() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for n in numbers:
                await producer.send_and_wait(
                    "counted", f'{{"msg": "{n}"}}'.encode(), key=str(n).encode()
                )
        finally:
            await producer.stop()

    asyncio.run(sending())


def test_the_reset_target_is_parsed_or_refused_naming_the_value() -> None:
    assert parse_reset_target("earliest") == ("earliest", 0)
    assert parse_reset_target("-3") == ("shift", -3)
    assert parse_reset_target("+10") == ("shift", 10)
    at = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
    assert parse_reset_target("2026-12-07T09:30:00Z") == ("time", int(at.timestamp() * 1000))
    assert parse_reset_target("2026-12-07T09:30:00") == ("time", int(at.timestamp() * 1000))
    with pytest.raises(ConfigError, match="'yesterday'"):
        parse_reset_target("yesterday")


def test_show_and_reset_the_group_fastkafka_run_uses(tmp_path: Path) -> None:
    with local_clusters(1, storage="memory://tansu/") as [cluster]:
        show_and_reset(cluster, tmp_path)


def show_and_reset(cluster: TansuBroker, tmp_path: Path) -> None:
    cluster.create_topic("counted", partitions=2)
    produce_each(cluster, range(20))
    output = tmp_path / "handled.txt"
    with two_workers(cluster, output) as (process, _):
        deadline = time.monotonic() + 60
        while sum(v or 0 for v in committed(cluster).values()) < 20:
            assert time.monotonic() < deadline, committed(cluster)
            time.sleep(0.2)
        refused = offsets(cluster, "reset", "--to", "earliest")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "live member(s)" in refused.stderr and GROUP in refused.stderr
        stop_cleanly(process)
    before = committed(cluster)

    shown = offsets(cluster, "show")
    assert shown.returncode == 0, shown.stderr
    assert (
        f"on_counted: group '{GROUP}', topic 'counted' on {cluster.bootstrap_servers}"
        in shown.stdout
    )
    rows = table(shown.stdout)
    assert {p: int(row[0]) for p, row in rows.items()} == before, shown.stdout
    assert all(row[-1] == "0" for row in rows.values()), "lag 0: everything was handled"

    dry = offsets(cluster, "reset", "--to", "-3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing committed" in dry.stdout
    assert {p: int(row[1]) for p, row in table(dry.stdout).items()} == {
        p: max(0, (offset or 0) - 3) for p, offset in before.items()
    }
    assert committed(cluster) == before, "a dry run commits nothing"

    earliest = offsets(cluster, "reset", "--to", "earliest")
    assert earliest.returncode == 0, earliest.stderr
    assert committed(cluster) == {0: 0, 1: 0}
    assert all(row[-1] != "0" for row in table(offsets(cluster, "show").stdout).values())

    # By time: the first record at or after a moment between two rounds of records.
    time.sleep(0.05)  # the rounds' timestamps must differ (the broker's clock, in ms)
    moment = datetime.now(UTC)
    time.sleep(0.05)
    produce_each(cluster, range(20, 30))
    by_time = offsets(cluster, "reset", "--to", moment.isoformat())
    assert by_time.returncode == 0, by_time.stderr
    assert committed(cluster) == before, "the new round starts where the old one ended"

    unknown = offsets(cluster, "show", "--consumer", "on_nothing")
    assert unknown.returncode == 2 and "on_counted" in unknown.stderr
