"""An app for `fastkafka run` tests: records which worker handled which message.

Its cluster is the first local test cluster (KAFKA_CLUSTER_1); each handled message is
appended as "<pid> <msg>" to the file named by COUNTING_APP_OUTPUT. Three messages misbehave
on purpose: "stuck" never returns, "slow" takes 4 s, "cancel" raises a stray CancelledError (as
a library might).
"""

import asyncio
import os

from pydantic import BaseModel

from fastkafka import FastKafka


class Count(BaseModel):
    msg: str


host, port = os.environ["KAFKA_CLUSTER_1"].split(":")
output = open(os.environ["COUNTING_APP_OUTPUT"], "a", buffering=1)

app = FastKafka(
    kafka_brokers={"development": {"url": host, "port": port}},
    bootstrap_servers_id="development",
    fetch_max_wait_ms=20,
    session_timeout_ms=6000,
    heartbeat_interval_ms=500,
)


@app.consumes(max_poll_records=500)
async def on_counted(msg: Count) -> None:
    output.write(f"{os.getpid()} {msg.msg}\n")
    if msg.msg == "stuck":
        await asyncio.Event().wait()
    if msg.msg == "slow":
        await asyncio.sleep(4)
    if msg.msg == "cancel":
        raise asyncio.CancelledError("not from fastkafka")
