"""The multi-cluster guide's apps and test snippets, verbatim.

From seeds/using_multiple_kafka_clusters.md.

Each test holds one app of the guide and the guide's test for it, unchanged; what the guide's
prose promises beyond the snippet (which cluster each message reached) is asserted after it.
"""

import pytest
from pydantic import BaseModel, Field

from fastkafka import FastKafka


async def test_main_app_consumes_and_produces_per_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class TestMsg(BaseModel):
        msg: str = Field(...)

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

    from fastkafka.testing import Tester

    async with Tester(app) as tester:
        # Send TestMsg to topic/broker pair on_preprocessed_signals_1 is consuming from
        await tester.mirrors[app.on_preprocessed_signals_1](TestMsg(msg="signal_s1"))
        # Assert on_preprocessed_signals_1 consumed sent message
        await app.awaited_mocks.on_preprocessed_signals_1.assert_called_with(
            TestMsg(msg="signal_s1"), timeout=5
        )
        # Assert app has produced a prediction
        await tester.mirrors[app.to_predictions_1].assert_called_with(
            TestMsg(msg="signal_s1"), timeout=5
        )

        # Send TestMsg to topic/broker pair on_preprocessed_signals_2 is consuming from
        await tester.mirrors[app.on_preprocessed_signals_2](TestMsg(msg="signal_s2"))
        # Assert on_preprocessed_signals_2 consumed sent message
        await app.awaited_mocks.on_preprocessed_signals_2.assert_called_with(
            TestMsg(msg="signal_s2"), timeout=5
        )
        # Assert app has produced a prediction
        await tester.mirrors[app.to_predictions_2].assert_called_with(
            TestMsg(msg="signal_s2"), timeout=5
        )

        # Each cluster saw only its own signal and prediction.
        app.mocks.on_preprocessed_signals_1.assert_called_once_with(TestMsg(msg="signal_s1"))
        app.mocks.on_preprocessed_signals_2.assert_called_once_with(TestMsg(msg="signal_s2"))
        assert tester.mirrors[app.to_predictions_1].call_args_list == [
            ((TestMsg(msg="signal_s1"),),)
        ]
        assert tester.mirrors[app.to_predictions_2].call_args_list == [
            ((TestMsg(msg="signal_s2"),),)
        ]

    assert capsys.readouterr().out.splitlines() == [
        "Received on s1: msg=TestMsg(msg='signal_s1')",
        "Received on s2: msg=TestMsg(msg='signal_s2')",
    ]


async def test_example_1_forwards_a_topic_to_another_cluster() -> None:
    from pydantic import BaseModel, Field

    from fastkafka import FastKafka

    class TestMsg(BaseModel):
        msg: str = Field(...)

    kafka_brokers_1 = dict(localhost=dict(url="server_1", port=9092))
    kafka_brokers_2 = dict(localhost=dict(url="server_2", port=9092))

    app = FastKafka(kafka_brokers=kafka_brokers_1)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_original(msg: TestMsg):
        await to_preprocessed_signals_forward(msg)

    @app.produces(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def to_preprocessed_signals_forward(data: TestMsg) -> TestMsg:
        return data

    from fastkafka.testing import Tester

    async with Tester(app) as tester:
        await tester.mirrors[app.on_preprocessed_signals_original](TestMsg(msg="signal"))
        await tester.mirrors[app.to_preprocessed_signals_forward].assert_called(timeout=5)

        # Forwarded once to server_2, and not echoed back into server_1's consumer.
        forwarded = tester.mirrors[app.to_preprocessed_signals_forward].call_args_list
        assert forwarded == [((TestMsg(msg="signal"),),)]
        app.mocks.on_preprocessed_signals_original.assert_called_once()


async def test_example_2_aggregates_two_clusters_into_one_topic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pydantic import BaseModel, Field

    from fastkafka import FastKafka

    class TestMsg(BaseModel):
        msg: str = Field(...)

    kafka_brokers_1 = dict(localhost=dict(url="server_1", port=9092))
    kafka_brokers_2 = dict(localhost=dict(url="server_2", port=9092))

    app = FastKafka(kafka_brokers=kafka_brokers_1)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals_1(msg: TestMsg):
        print(f"Default: {msg=}")
        await to_predictions(msg)

    @app.consumes(topic="preprocessed_signals", brokers=kafka_brokers_2)
    async def on_preprocessed_signals_2(msg: TestMsg):
        print(f"Specified: {msg=}")
        await to_predictions(msg)

    @app.produces(topic="predictions")
    async def to_predictions(prediction: TestMsg) -> TestMsg:
        print(f"Sending prediction: {prediction}")
        return [prediction]

    from fastkafka.testing import Tester

    async with Tester(app) as tester:
        await tester.mirrors[app.on_preprocessed_signals_1](TestMsg(msg="signal"))
        await tester.mirrors[app.on_preprocessed_signals_2](TestMsg(msg="signal"))
        await tester.on_predictions.assert_called(timeout=5)

        # Both clusters' signals end up as predictions on server_1.
        await tester.on_predictions.assert_has_calls(
            [((TestMsg(msg="signal"),),), ((TestMsg(msg="signal"),),)], timeout=5
        )
        assert tester.on_predictions.call_count == 2

    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(
        [
            "Default: msg=TestMsg(msg='signal')",
            "Sending prediction: msg='signal'",
            "Specified: msg=TestMsg(msg='signal')",
            "Sending prediction: msg='signal'",
        ]
    )


async def test_example_3_produces_to_two_clusters(capsys: pytest.CaptureFixture[str]) -> None:
    from pydantic import BaseModel, Field

    from fastkafka import FastKafka

    class TestMsg(BaseModel):
        msg: str = Field(...)

    kafka_brokers_1 = dict(localhost=dict(url="server_1", port=9092))
    kafka_brokers_2 = dict(localhost=dict(url="server_2", port=9092))

    app = FastKafka(kafka_brokers=kafka_brokers_1)

    @app.consumes(topic="preprocessed_signals")
    async def on_preprocessed_signals(msg: TestMsg):
        print(f"{msg=}")
        await to_predictions_1(TestMsg(msg="prediction"))
        await to_predictions_2(TestMsg(msg="prediction"))

    @app.produces(topic="predictions")
    async def to_predictions_1(prediction: TestMsg) -> TestMsg:
        print(f"Sending prediction to s1: {prediction}")
        return [prediction]

    @app.produces(topic="predictions", brokers=kafka_brokers_2)
    async def to_predictions_2(prediction: TestMsg) -> TestMsg:
        print(f"Sending prediction to s2: {prediction}")
        return [prediction]

    from fastkafka.testing import Tester

    async with Tester(app) as tester:
        await tester.to_preprocessed_signals(TestMsg(msg="signal"))
        await tester.mirrors[to_predictions_1].assert_called(timeout=5)
        await tester.mirrors[to_predictions_2].assert_called(timeout=5)

        # One prediction on each cluster, and the topic is ambiguous for the shorthand.
        assert tester.mirrors[to_predictions_1].call_args_list == [((TestMsg(msg="prediction"),),)]
        assert tester.mirrors[to_predictions_2].call_args_list == [((TestMsg(msg="prediction"),),)]
        with pytest.raises(RuntimeError, match="Ambiguous topic: predictions"):
            tester.on_predictions  # noqa: B018

    assert capsys.readouterr().out.splitlines() == [
        "msg=TestMsg(msg='signal')",
        "Sending prediction to s1: msg='prediction'",
        "Sending prediction to s2: msg='prediction'",
    ]
