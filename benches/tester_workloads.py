"""Workloads timed by `benches/bench_tester.py`, runnable with any FastKafka-compatible package.

Run as `python benches/tester_workloads.py seed|roundtrip N`; prints one JSON line. The code
uses only FastKafka's public API, so the same file measures fastkafka-rs and FastKafka 0.8.0
(each from its own virtual environment). No `from __future__ import annotations`: FastKafka
0.8.0 reads annotations as objects.
"""

import asyncio
import json
import sys
import time

from pydantic import BaseModel, Field

from fastkafka import FastKafka
from fastkafka.testing import Tester


class TestMsg(BaseModel):
    msg: str = Field(...)


def seed_app() -> FastKafka:
    """The guide's main app."""
    kafka_brokers_1 = dict(
        development=dict(url="dev.server_1", port=9092),
        production=dict(url="prod.server_1", port=9092),
    )
    kafka_brokers_2 = dict(
        development=dict(url="dev.server_2", port=9092),
        production=dict(url="prod.server_1", port=9092),
    )
    app = FastKafka(kafka_brokers=kafka_brokers_1, bootstrap_servers_id="development")

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_1(msg: TestMsg) -> None:
        await to_predictions_1(msg)

    @app.consumes(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def on_preprocessed_signals_2(msg: TestMsg) -> None:
        await to_predictions_2(msg)

    @app.produces(topic="predictions")
    async def to_predictions_1(msg: TestMsg) -> TestMsg:
        return msg

    @app.produces(topic="predictions", brokers=kafka_brokers_2)
    async def to_predictions_2(msg: TestMsg) -> TestMsg:
        return msg

    return app


async def seed_test() -> float:
    """Wall time of the guide's test snippet, Tester start and stop included."""
    app = seed_app()
    started = time.perf_counter()
    async with Tester(app) as tester:
        await tester.mirrors[app.on_preprocessed_signals_1](TestMsg(msg="signal_s1"))
        await app.awaited_mocks.on_preprocessed_signals_1.assert_called_with(
            TestMsg(msg="signal_s1"), timeout=5
        )
        await tester.mirrors[app.to_predictions_1].assert_called_with(
            TestMsg(msg="signal_s1"), timeout=5
        )
        await tester.mirrors[app.on_preprocessed_signals_2](TestMsg(msg="signal_s2"))
        await app.awaited_mocks.on_preprocessed_signals_2.assert_called_with(
            TestMsg(msg="signal_s2"), timeout=5
        )
        await tester.mirrors[app.to_predictions_2].assert_called_with(
            TestMsg(msg="signal_s2"), timeout=5
        )
    return time.perf_counter() - started


async def roundtrip(count: int) -> float:
    """Messages per second through mirror -> consumer -> producer -> consumer of the result."""
    app = FastKafka(kafka_brokers=dict(localhost=dict(url="bench", port=9092)))
    all_arrived = asyncio.Event()
    arrived = 0

    @app.consumes(topic="signals")
    async def on_signals(msg: TestMsg) -> None:
        await to_predictions(msg)

    @app.produces(topic="predictions")
    async def to_predictions(msg: TestMsg) -> TestMsg:
        return msg

    @app.consumes(topic="predictions")
    async def on_predictions(msg: TestMsg) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == count:
            all_arrived.set()

    async with Tester(app) as tester:
        send = tester.mirrors[app.on_signals]
        started = time.perf_counter()
        for i in range(count):
            await send(TestMsg(msg=str(i)))
        await asyncio.wait_for(all_arrived.wait(), timeout=600)
        elapsed = time.perf_counter() - started
    return count / elapsed


def main() -> None:
    workload, count = sys.argv[1], int(sys.argv[2])
    if workload == "seed":
        runs = [asyncio.run(seed_test()) for _ in range(count)]
        print(json.dumps({"seconds": sorted(runs)[len(runs) // 2], "runs": runs}))
    elif workload == "roundtrip":
        print(json.dumps({"messages_per_second": asyncio.run(roundtrip(count))}))
    else:
        raise SystemExit(f"unknown workload {workload!r}; use 'seed' or 'roundtrip'")


if __name__ == "__main__":
    main()
