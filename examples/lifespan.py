"""Lifespan: an async context manager entered before the app starts and left after it stops,
for resources the handlers share (a model, a connection pool).

Run: python examples/lifespan.py
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.testing import Tester

resources: dict[str, object] = {}


@asynccontextmanager
async def lifespan(app: FastKafka) -> AsyncIterator[None]:
    resources["model"] = lambda x: x * 2  # load something expensive once
    print("resources loaded")
    yield
    resources.clear()
    print("resources released")


class Number(BaseModel):
    value: int


app = FastKafka(lifespan=lifespan)


@app.consumes(topic="numbers")
async def on_numbers(number: Number) -> None:
    await to_doubled(Number(value=resources["model"](number.value)))  # type: ignore[operator]


@app.produces(topic="doubled")
async def to_doubled(number: Number) -> Number:
    return number


async def main() -> None:
    async with Tester(app) as tester:
        await tester.to_numbers(Number(value=21))
        await tester.on_doubled.assert_called_with(Number(value=42), timeout=5)
        print("21 doubled is 42")


if __name__ == "__main__":
    asyncio.run(main())
