"""Background tasks: @app.run_in_background() starts a coroutine with the app (after its
consumers are ready, so it may call producers) and cancels it when the app stops.

Run: python examples/background_tasks.py
"""

import asyncio

from pydantic import BaseModel

from fastkafka import FastKafka
from fastkafka.testing import Tester


class Heartbeat(BaseModel):
    beat: int


app = FastKafka()


@app.produces(topic="heartbeats")
async def to_heartbeats(heartbeat: Heartbeat) -> Heartbeat:
    return heartbeat


@app.run_in_background()
async def beat() -> None:
    n = 0
    while True:
        await to_heartbeats(Heartbeat(beat=n))
        n += 1
        await asyncio.sleep(0.01)


async def main() -> None:
    async with Tester(app) as tester:
        await tester.on_heartbeats.assert_called_with(Heartbeat(beat=3), timeout=5)
        print(f"{tester.on_heartbeats.call_count} heartbeats before stopping")


if __name__ == "__main__":
    asyncio.run(main())
