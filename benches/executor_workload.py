"""One run of `benches/bench_executors.py`: the forwarding handler under one executor, on the
in-memory broker (so only the Python side and the engine count). Prints one JSON line.

`python benches/executor_workload.py SequentialExecutor|DynamicTaskExecutor RECORDS`.
"""

import asyncio
import json
import resource
import sys
import time

from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka._core import MemoryBroker


class TestMsg(BaseModel):
    msg: str


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def forward(executor: str, records: int) -> dict[str, float]:
    app = FastKafka()
    all_handled = asyncio.Event()
    handled = 0

    @app.produces(topic="bench_out")
    async def to_bench_out(msg: TestMsg) -> TestMsg:
        return msg

    @app.consumes(topic="bench_in", executor=executor, auto_offset_reset="earliest")
    async def on_bench_in(msg: TestMsg) -> None:
        nonlocal handled
        await to_bench_out(msg)
        handled += 1
        if handled == records:
            all_handled.set()

    app.use_transport(broker := MemoryBroker())
    cluster = broker.cluster("localhost:9092")
    for i in range(records):
        cluster.send("bench_in", TestMsg(msg=f"signal {i}").model_dump_json().encode())
    cpu, started = cpu_seconds(), time.perf_counter()
    async with app:
        await asyncio.wait_for(all_handled.wait(), 300)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {
        "steady_msgs_per_s": records / elapsed,
        "steady_cpu_us_per_msg": cpu / records * 1e6,
        "end_unix": time.time(),
    }


def main() -> None:
    executor, records = sys.argv[1], int(sys.argv[2])
    print(json.dumps(asyncio.run(forward(executor, records))))


if __name__ == "__main__":
    main()
