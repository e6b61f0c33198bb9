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
    from harness import Scenario, Stream, Worker
    from local_kafka import TansuBroker

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
    """6. Poison in the stream: invalid JSON, wrong schema, an empty value, a tombstone,
    non-UTF-8 header values, a record whose output is over the size limit, random byte strings."""
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


async def secure_destination_killed(scenario: Scenario, stream: Stream) -> list[str]:
    """11. The destination requires SASL (SCRAM-SHA-512) over TLS; it is killed (kill -9)
    mid-stream and restarted after longer than the producer's message timeout."""
    scenario.secure_destination()
    return ["destination: SASL SCRAM-SHA-512 over TLS", *await destination_killed(scenario, stream)]


async def rebalance_storm(scenario: Scenario, stream: Stream) -> list[str]:
    """12. A rebalance storm: `fastkafka run --num-workers 2` processes of one group (`in` has 12
    partitions), as separate hosts run them, started, SIGTERMed and SIGKILLed (the command with
    its workers: a host lost) every 2 to 4 s while the stream flows, one to three at a time;
    one is left running to finish the stream. Items take 3 ms each, so that the stream flows
    through many rounds of the storm."""
    scenario.item_delay = max(scenario.item_delay, 0.003)
    rng = random.Random(12)
    hosts = [scenario.start_worker(cli_stop_timeout=10, cli_workers=2)]
    await hosts[0].until_started()
    actions = {"started": 1, "SIGTERMed": 0, "SIGKILLed": 0}
    statuses = []
    began = time.monotonic()
    while await scenario.count_out() < stream.items * 0.8 and time.monotonic() - began < 90:
        await asyncio.sleep(rng.uniform(2, 4))  # the storm's own pace, not a synchronisation
        choices = (["start"] if len(hosts) < 3 else []) + (["term", "kill"] if hosts else [])
        action = rng.choice(choices)
        if action == "start":
            hosts.append(scenario.start_worker(cli_stop_timeout=10, cli_workers=2))
            actions["started"] += 1
            continue
        host = hosts.pop(rng.randrange(len(hosts)))
        if scenario.out_at_fault is None:
            scenario.out_at_fault = await scenario.count_out()
        if action == "term":
            host.signal(signal.SIGTERM)
            statuses.append(await asyncio.to_thread(host.wait, 30))
            actions["SIGTERMed"] += 1
        else:
            host.kill_host()
            actions["SIGKILLed"] += 1
    if not hosts:
        hosts.append(scenario.start_worker(cli_stop_timeout=10, cli_workers=2))
        actions["started"] += 1
    counts = ", ".join(f"{count} {action}" for action, count in actions.items())
    stopped = f"; SIGTERMed hosts exited {sorted(set(statuses))}" if statuses else ""
    return [f"hosts: {counts} over {time.monotonic() - began:.0f} s{stopped}"]


def hosts_grow_and_shrink(assignment: str) -> Fault:
    """13. Many hosts: `fastkafka run --num-workers 2` processes as hosts run them — each in a
    working directory of its own, with its own health port — in one group (`in` has 12
    partitions) under ``assignment``: one host, then three, then one again (one SIGTERMed, one
    SIGKILLed), while the stream flows. After each step, every host's `/readyz` must come to
    say ready with their consumers holding the 12 partitions exactly once between them, for
    three reports in a row. Under the eager protocol, hosts that all say ready must not hold a
    partition twice for longer than a report is old (see held_once); partitions held by
    nobody while hosts say ready (a lost host's, until the session timeout) are counted, as
    are both under cooperative-sticky, where a member may say ready mid-rebalance holding what
    it was assigned so far. Notes the items per second `out` grew by in each step."""

    async def fault(scenario: Scenario, stream: Stream) -> list[str]:
        # Steps take some 10 s each: at 10 ms an item, a worker's batch takes about a second,
        # short enough for rebalances to settle, long enough for the stream to span them.
        scenario.item_delay = max(scenario.item_delay, 0.01)
        strict = assignment != "cooperative-sticky"
        rates: list[str] = []
        twice, unowned = 0, 0

        async def step(label: str, hosts: list[Worker]) -> None:
            nonlocal twice, unowned
            counts = await scenario.rate_while(rates, label, held_once(hosts, strict))
            twice, unowned = twice + counts[0], unowned + counts[1]

        hosts = [scenario.start_host(assignment)]
        await step("1 host", hosts)
        hosts += [scenario.start_host(assignment), scenario.start_host(assignment)]
        await step("1 -> 3 hosts", hosts)
        scenario.out_at_fault = await scenario.count_out()
        leaving, lost = hosts.pop(), hosts.pop()
        leaving.signal(signal.SIGTERM)
        lost.kill_host()
        status = await asyncio.to_thread(leaving.wait, 30)
        await step("3 -> 1 host", hosts)
        return [
            f"{assignment}; SIGTERMed host exited {status}; items/s: {', '.join(rates)}; "
            f"reports of ready hosts holding a partition twice: {twice}, leaving some unheld: "
            f"{unowned}"
        ]

    return fault


async def held_once(hosts: list[Worker], strict: bool, within: float = 120.0) -> tuple[int, int]:
    """Waits until every host answers `/readyz` 200 and their consumers hold `in`'s 12
    partitions exactly once between them in three reports in a row. Returns in how many
    reports before that all hosts said ready while (a) some partition was held twice or (b)
    some was held by nobody — as after a host is lost, until the group's session timeout
    gives its partitions to the survivors, who rightly say ready for themselves meanwhile.
    Reports are taken 1.5 s apart, and each worker rewrites its own every second, so one
    report can mix a worker's state from before a rebalance with another's from after it;
    with ``strict``, a partition held twice in two reports in a row — longer than any
    worker's report is old — fails at once."""
    deadline, agreed, twice, unowned, twice_in_a_row = time.monotonic() + within, 0, 0, 0, 0
    owned: list[int] = []
    problems: list[str] = []
    while agreed < 3:
        if time.monotonic() > deadline:
            raise AssertionError(f"never held exactly once by ready hosts: {owned}, {problems}")
        statuses: list[int] = []
        owned, problems = [], []
        for host in hosts:
            status, body = await asyncio.to_thread(host.readiness)
            statuses.append(status)
            problems += body.get("problems", [])
            for report in body.get("workers", {}).values():
                for consumer in (report or {}).get("consumers", []):
                    owned += consumer["partitions"]
        ready = all(s == 200 for s in statuses)
        held_twice = len(owned) != len(set(owned))
        twice_in_a_row = twice_in_a_row + 1 if ready and held_twice else 0
        twice += twice_in_a_row > 0
        unowned += ready and set(owned) != set(range(12))
        if strict and twice_in_a_row >= 2:
            raise AssertionError(f"ready hosts hold partitions twice: {sorted(owned)}")
        agreed = agreed + 1 if ready and sorted(owned) == list(range(12)) else 0
        await asyncio.sleep(1.5)  # longer than a report period: see the docstring
    return twice, unowned


async def source_fails_over(scenario: Scenario, stream: Stream) -> list[str]:
    """14. The source is lost (kill -9) mid-stream, its standby kept in step by a mirror that
    keeps timestamps: the consumer moves there after `failover_after` (8 s) and goes on,
    rewinding 2 s; once the standby has carried a share of the stream the source comes back
    and the app moves back to it."""
    scenario.start_worker()
    await scenario.strike_after(stream.items // 5)
    await scenario.until_mirrored(stream.items + len(stream.poison))
    assert scenario.source_standby is not None
    moved = f"reads cluster {scenario.source_standby.bootstrap_servers} now"
    carried = await standby_carries(scenario, stream, scenario.source, moved)
    return [
        f"source lost; the consumer moved and the standby carried {stream.items // 5} more "
        f"items {carried:.1f} s after the kill "
        "(failover_after 8 s), then the source came back"
    ]


async def destination_fails_over(scenario: Scenario, stream: Stream) -> list[str]:
    """15. The destination is lost (kill -9) mid-stream: outputs — those queued for it too —
    move to its standby after `failover_after` (8 s); once the standby has taken a share of
    the stream the destination comes back and the app moves back to it."""
    scenario.start_worker()
    await scenario.strike_after(stream.items // 5)
    moved = f"failing over from cluster {scenario.dest.bootstrap_servers}"
    carried = await standby_carries(scenario, stream, scenario.dest, moved)
    return [
        f"destination lost; the producer moved and its standby took {stream.items // 5} more "
        f"items {carried:.1f} s after the kill (failover_after 8 s), then the destination "
        "came back"
    ]


async def standby_carries(
    scenario: Scenario, stream: Stream, lost: TansuBroker, moved: str
) -> float:
    """Kills ``lost``, waits until the worker logs ``moved`` (records it had read ahead may
    flow on for a while without a move) and `out` holds a fifth of the stream more than before
    the kill — counted without the lost cluster, so the standby's share — then starts ``lost``
    again; returns how long that took from the kill."""
    before = await scenario.count_out()
    lost.kill()
    killed = time.monotonic()
    await scenario.workers[-1].until_logged(moved)
    await scenario.until_out_has(before + stream.items // 5)
    carried = time.monotonic() - killed
    lost.start()
    return carried


def shaped(shape: str, fault: Fault) -> Fault:
    """``fault`` with the fault app's handler written as ``shape`` (fault_app.py)."""

    async def run(scenario: Scenario, stream: Stream) -> list[str]:
        scenario.shape = shape
        notes = await fault(scenario, stream)
        return notes if shape == "guide" else [f"handler shape: {shape}", *notes]

    return run


Poison = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def poison_records(count: int, seed: int = 6) -> list[Poison]:
    rng = random.Random(seed)
    fixed: list[Poison] = [
        (b"p", b"{not json", []),
        (b"p", b'{"id": "seven", "payload": 1}', []),
        (b"p", b"", []),  # an empty value
        (b"p", None, [("deleted-by", None)]),  # a tombstone, with a null header value
        (b"p", b'{"id": -5}', [("origin", b"\xff\xfe not utf-8")]),
        # Valid, but what the app would send for it is over the client's message.max.bytes
        # (1 MB): the handler fails, and so would the dead letter carrying it.
        (b"p", Item(id=-6, payload="y" * 1_200_000).model_dump_json().encode(), []),
    ]
    noise = {bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) for _ in range(count)}
    return fixed + [(None, value, []) for value in sorted(noise) if value not in (b"",)]


FAULTS: dict[str, Fault] = {
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
    "11 secure destination killed": secure_destination_killed,
    "12 rebalance storm": rebalance_storm,
    "13 hosts grow and shrink": hosts_grow_and_shrink("range,roundrobin"),
    "13 hosts grow and shrink, cooperative": hosts_grow_and_shrink("cooperative-sticky"),
    "14 source lost, standby takes over": source_fails_over,
    "15 destination lost, standby takes over": destination_fails_over,
}

# Faults whose clusters have standbys (a mirror keeps the source's in step).
FAILOVER_FAULTS = ("14", "15")

# How the fault app's handler is written (fault_app.py): `guide` first, the guide's own.
SHAPES = ("guide", "task", "dynamic", "batch", "defaults", "shared", "rust")


def applies(fault: str, shape: str) -> bool:
    """Whether ``fault`` tests something under ``shape``: poison, retries and dead letters
    need the retry policy and dead-letter topic `defaults` goes without; the Rust app has no
    `fastkafka run` to time a stop with (8) and reaches its clusters with one set of client
    options, so not a secure destination beside a plain source (11)."""
    number = fault.split()[0]
    if number == "13":
        return shape == "guide"  # about hosts and groups, not about handlers
    if shape == "defaults":
        return number not in ("6", "7", "10")
    if shape == "rust":
        # The Rust fault app names no standby.
        return number not in ("8", "11", *FAILOVER_FAULTS)
    return True


# The fault matrix: every fault under every shape it applies to; the guide's shape keeps the
# fault's own name.
SCENARIOS: dict[str, Fault] = {
    (name if shape == "guide" else f"{name}, {shape}"): shaped(shape, fault)
    for name, fault in FAULTS.items()
    for shape in SHAPES
    if applies(name, shape)
}
