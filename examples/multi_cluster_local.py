# The guide's main app (examples/multi_cluster_example.py) with its `development` clusters on
# this machine: KAFKA_CLUSTER_1 and KAFKA_CLUSTER_2 (host:port), as `make demo-kafka` starts them.
#   fastkafka run --num-workers=1 --kafka-broker=development multi_cluster_local:app
import os

from pydantic import BaseModel, Field

from fastkafka import FastKafka


class TestMsg(BaseModel):
    msg: str = Field(...)


def local(variable: str, default: str) -> dict[str, str]:
    host, port = os.environ.get(variable, default).split(":")
    return dict(url=host, port=port)


kafka_brokers_1 = dict(
    development=local("KAFKA_CLUSTER_1", "127.0.0.1:9092"),
    production=dict(url="prod.server_1", port=9092),
)
kafka_brokers_2 = dict(
    development=local("KAFKA_CLUSTER_2", "127.0.0.1:9093"),
    production=dict(url="prod.server_1", port=9092),
)

app = FastKafka(kafka_brokers=kafka_brokers_1, bootstrap_servers_id="development")


@app.consumes(topic="preprocessed_signals")
async def on_preprocessed_signals_1(msg: TestMsg):
    print(f"Received on s1: {msg=}")
    await to_predictions_1(msg)


@app.consumes(topic="preprocessed_signals", brokers=kafka_brokers_2)
async def on_preprocessed_signals_2(msg: TestMsg):
    print(f"Received on s2: {msg=}")
    await to_predictions_2(msg)


@app.produces(topic="predictions")
async def to_predictions_1(msg: TestMsg) -> TestMsg:
    return msg


@app.produces(topic="predictions", brokers=kafka_brokers_2)
async def to_predictions_2(msg: TestMsg) -> TestMsg:
    return msg
