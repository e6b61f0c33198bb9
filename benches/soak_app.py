"""The app of `benches/soak.py`: the guide's forwarding app — consume `preprocessed_signals` on
cluster 1, produce each message to `predictions` on cluster 2 — with its clusters from
SOAK_CLUSTER_1 and SOAK_CLUSTER_2 (host:port), run by `fastkafka run`."""

import os

from pydantic import BaseModel

from fastkafka import FastKafka


class TestMsg(BaseModel):
    msg: str


def brokers(variable: str) -> dict[str, dict[str, str]]:
    host, port = os.environ[variable].split(":")
    return {"development": {"url": host, "port": port}}


app = FastKafka(kafka_brokers=brokers("SOAK_CLUSTER_1"), bootstrap_servers_id="development")


@app.produces(topic="predictions", brokers=brokers("SOAK_CLUSTER_2"))
async def to_predictions(msg: TestMsg) -> TestMsg:
    return msg


@app.consumes(topic="preprocessed_signals", auto_offset_reset="earliest", fetch_max_wait_ms=10)
async def on_preprocessed_signals(msg: TestMsg) -> None:
    await to_predictions(msg)
