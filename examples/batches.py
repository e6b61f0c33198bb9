"""Batch consumption: a handler that takes list[Model] (or List[Model]) gets one call per
poll and partition.

Run: python examples/batches.py   (in memory; under `fastkafka run` it uses real clusters)
"""

import asyncio

from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.testing import Tester


class Measurement(BaseModel):
    sensor: str
    value: float


app = FastKafka(kafka_brokers={"localhost": {"url": "localhost", "port": 9092}})


@app.consumes(topic="measurements", max_poll_records=50)
async def on_measurements(batch: list[Measurement]) -> None:
    average = sum(m.value for m in batch) / len(batch)
    print(f"batch of {len(batch)}, average {average:.2f}")
    await to_averages(Measurement(sensor="all", value=average))


@app.produces(topic="averages")
async def to_averages(average: Measurement) -> Measurement:
    return average


async def main() -> None:
    async with Tester(app) as tester:
        await tester.to_measurements([Measurement(sensor="s", value=i) for i in range(120)])
        await tester.on_averages.assert_called(timeout=5)


if __name__ == "__main__":
    asyncio.run(main())
