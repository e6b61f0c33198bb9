"""An app never runs on with a dead consumer, and never shows secrets or payloads in its errors
and logs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import subprocess
import sys

import pytest
from kafka_helpers import TIMEOUT
from pydantic import BaseModel

from fastkafka import FastKafka, _core
from fastkafka.exceptions import ConfigError, ConsumerEndedError, HandlerError
from fastkafka.testing import InMemoryBroker, Tester


class Job(BaseModel):
    n: int


def app_whose_handler_raises(error: BaseException) -> FastKafka:
    app = FastKafka()

    @app.consumes()
    async def on_jobs(msg: Job) -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "raised", [SystemExit(3), KeyboardInterrupt(), asyncio.CancelledError("stray")]
)
async def test_a_handler_raising_a_base_exception_fails_the_app(raised: BaseException) -> None:
    app = app_whose_handler_raises(raised)
    with InMemoryBroker() as broker, pytest.raises(type(raised)) as ended:
        async with app:
            broker.cluster("localhost:9092").send("jobs", b'{"n": 1}')
            failure = await asyncio.wait_for(app.wait_for_failure(), TIMEOUT)
            assert failure is raised
    assert ended.value is raised, "`async with app:` raises it on exit"


async def test_a_consumer_loop_that_ends_on_its_own_is_reported() -> None:
    broker = _core.MemoryBroker()
    runtime = _core.Runtime(_core.KafkaBrokers.localhost(), "localhost")
    reported: asyncio.Future[tuple[str, BaseException]] = asyncio.get_running_loop().create_future()

    async def failing_batch(records: list[_core.Record], deliveries: _core.DeliveryTracker) -> None:
        raise RuntimeError("the batch handler broke")

    runtime.add_consumer("on_jobs", "jobs", failing_batch)
    running = await asyncio.to_thread(
        runtime.start,
        broker,
        asyncio.get_running_loop(),
        lambda name, error: reported.set_result((name, error)),
    )
    try:
        broker.cluster("localhost:9092").send("jobs", b"{}")
        name, error = await asyncio.wait_for(reported, TIMEOUT)
        assert name == "on_jobs"
        assert isinstance(error, ConsumerEndedError), "one class per engine error"
        assert isinstance(error.__cause__, HandlerError), "why it ended is kept as its cause"
        assert "the batch handler broke" in str(error.__cause__)
    finally:
        with pytest.raises(Exception, match="the batch handler broke"):
            await asyncio.to_thread(running.stop)


async def test_errors_about_options_never_show_their_values() -> None:
    app = FastKafka()

    @app.produces(topic="a", sasl_plain_password="hunter2")
    async def to_a(msg: Job) -> Job:
        return msg

    @app.produces(topic="b", sasl_plain_password="swordfish")
    async def to_b(msg: Job) -> Job:
        return msg

    with pytest.raises(ConfigError) as disagreeing:
        async with Tester(app):
            pass
    assert "different values for sasl.password" in str(disagreeing.value)
    with pytest.raises(ConfigError) as wrong_type:

        @app.produces(topic="c", sasl_plain_password=b"hunter2")
        async def to_c(msg: Job) -> Job:
            return msg

    assert "of type bytes" in str(wrong_type.value)
    for error in (disagreeing.value, wrong_type.value):
        assert "hunter2" not in str(error) and "swordfish" not in str(error)


async def test_an_undecodable_record_is_logged_without_its_contents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastKafka()

    @app.consumes()
    async def on_jobs(msg: Job) -> None: ...

    async with Tester(app) as tester:
        with caplog.at_level(logging.ERROR, logger="fastkafka.consumer"):
            await tester.to_jobs({"n": "card 4111-1111-1111-1111"})
            await tester.to_jobs(b"{broken json card 4111-1111-1111-1111")
            await tester.to_jobs(Job(n=1))
            await app.awaited_mocks.on_jobs.assert_called_once_with(Job(n=1), timeout=5)
    logged = [r.getMessage() for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert len(logged) == 2, logged
    assert "topic=jobs partition=0 offset=0" in logged[0]
    assert "n: Input should be a valid integer" in logged[0]
    assert "[type=json_invalid]" in logged[1]
    assert not any("4111" in line for line in logged), logged


async def test_a_handler_that_never_returns_cannot_hang_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[int] = []
    first_started, seen_again = asyncio.Event(), asyncio.Event()

    def app_in_group() -> FastKafka:
        app = FastKafka(stop_timeout=0.2)

        @app.consumes(group_id="billing")
        async def on_jobs(msg: Job) -> None:
            handled.append(msg.n)
            if len(handled) == 1:
                first_started.set()
                await asyncio.Event().wait()  # never returns
            seen_again.set()

        return app

    with InMemoryBroker() as broker:
        broker.cluster("localhost:9092").send("jobs", b'{"n": 7}')
        with caplog.at_level(logging.ERROR, logger="fastkafka.consumer"):
            async with asyncio.timeout(TIMEOUT):
                async with app_in_group():
                    await first_started.wait()
        abandoned = [r.getMessage() for r in caplog.records if "abandoning" in r.getMessage()]
        assert len(abandoned) == 1, [r.getMessage() for r in caplog.records]
        assert abandoned[0].startswith("on_jobs: still handling a batch of 1 record(s)")
        assert "topic=jobs partition=0 offset=0" in abandoned[0]

        # Its offset was not committed: the group gets the record again.
        async with app_in_group():
            await asyncio.wait_for(seen_again.wait(), TIMEOUT)
        assert handled == [7, 7]


class _ForbiddenExecutor(concurrent.futures.ThreadPoolExecutor):
    """Stands in for asyncio's default executor and refuses work."""

    def submit(self, *args: object, **kwargs: object) -> concurrent.futures.Future[object]:
        raise AssertionError("fastkafka used asyncio's default executor")


async def test_nothing_of_fastkafka_runs_on_the_default_executor() -> None:
    """Lifecycle steps and plain `def` handlers have threads of their own: stopping many
    consumers at once can never take the threads their handlers need, and the application's
    own `asyncio.to_thread` calls never wait behind fastkafka."""
    asyncio.get_running_loop().set_default_executor(_ForbiddenExecutor())
    app = FastKafka()
    handled: list[int] = []

    @app.consumes()
    def on_jobs(msg: Job) -> None:  # a plain def handler
        handled.append(msg.n)

    @app.produces()
    async def to_jobs(msg: Job) -> Job:
        return msg

    async with Tester(app) as tester:
        await to_jobs(Job(n=5))
        await app.awaited_mocks.on_jobs.assert_called_once_with(Job(n=5), timeout=5)
        await tester.awaited_mocks.on_jobs.assert_called_once_with(Job(n=5), timeout=5)
    assert handled == [5]


async def test_a_batch_nearing_max_poll_interval_is_reported_with_its_consumer() -> None:
    """A group evicts a member that does not poll within max.poll.interval.ms; the log says
    which consumer and which batch first (at 80% of the interval)."""
    loop = asyncio.get_running_loop()
    warned: asyncio.Future[str] = loop.create_future()

    class Watcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # called on an engine thread
            if "still handling a batch" in record.getMessage():
                loop.call_soon_threadsafe(
                    lambda: warned.done() or warned.set_result(record.getMessage())
                )

    app = FastKafka()

    @app.consumes(group_id="slow", max_poll_interval_ms=500)
    async def on_jobs(msg: Job) -> None:
        await warned  # finishes only once the warning was logged

    watcher = Watcher()
    logging.getLogger("fastkafka").addHandler(watcher)
    try:
        with InMemoryBroker() as broker:
            async with app:
                broker.cluster("localhost:9092").send("jobs", b'{"n": 1}')
                message = await asyncio.wait_for(warned, TIMEOUT)
    finally:
        logging.getLogger("fastkafka").removeHandler(watcher)
    assert message.startswith(
        "on_jobs: still handling a batch of 1 record(s) (first topic=jobs partition=0 offset=0) "
        "after 0.4 s"
    ), message


DROP_SCRIPT = """
import gc, logging, socket, sys, threading, time
from fastkafka import _core

errors = threading.Event()

class Seen(logging.Handler):
    def emit(self, record):
        errors.set()

logging.getLogger("fastkafka").addHandler(Seen())
logging.getLogger("fastkafka").setLevel(logging.DEBUG)
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
for attempt in range(5):
    errors.clear()
    transport = _core.KafkaTransport({"reconnect.backoff.ms": "1", "reconnect.backoff.max.ms": "5"})
    cluster = transport.cluster(f"127.0.0.1:{port}")
    # The client's own threads now log connection errors through Python logging (GIL needed).
    if not errors.wait(20):
        sys.exit("no connection error was logged")
    del cluster, transport
    gc.collect()  # the last handle goes here, on this thread, with the GIL held
print("dropped")
"""


def test_dropping_a_kafka_client_never_deadlocks_the_interpreter() -> None:
    """librdkafka's threads take the GIL to log; dropping a client joins them. Done with the
    GIL held that was a deadlock, so clients are dropped off the Python thread."""
    done = subprocess.run(
        [sys.executable, "-c", DROP_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "dropped", done.stderr[-2000:]


EXIT_SCRIPT = """
import asyncio, sys
from pydantic import BaseModel
from fastkafka import FastKafka
from fastkafka.testing import InMemoryBroker

class Job(BaseModel):
    n: int

app = FastKafka()

@app.consumes()
async def on_jobs(msg: Job) -> None:
    await asyncio.sleep(0)

async def main() -> None:
    with InMemoryBroker() as broker:
        cluster = broker.cluster("localhost:9092")
        await app.__aenter__()
        for _ in range(20_000):
            cluster.send("jobs", b'{"n": 1}')
        print("exiting")
        sys.exit(0)  # without stopping: the consumer loop is mid-flight as Python exits

asyncio.run(main())
"""


def test_exiting_without_stopping_the_app_exits_cleanly() -> None:
    """Engine threads that would enter Python while the interpreter finalizes (a batch to
    hand over, a line to log) stay out instead, and those inside are waited for before it
    does: CPython ends such a thread mid-call, which aborts the process."""
    # The race is narrow (about one exit in six aborted before the fix, on 3.11), so a few
    # exits are tried.
    for _ in range(8):
        done = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and done.stdout.strip() == "exiting", (
            done.returncode,
            done.stderr[-2000:],
        )


async def test_payloads_can_be_logged_on_request_truncated(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTKAFKA_LOG_PAYLOADS", "10")
    app = FastKafka()

    @app.consumes()
    async def on_jobs(msg: Job) -> None: ...

    async with Tester(app) as tester:
        with caplog.at_level(logging.ERROR, logger="fastkafka.consumer"):
            await tester.to_jobs(b'{"n": "not a number"}')
            await tester.to_jobs(Job(n=1))
            await app.awaited_mocks.on_jobs.assert_called_once_with(Job(n=1), timeout=5)
    logged = [r.getMessage() for r in caplog.records if "cannot be decoded" in r.getMessage()]
    assert logged and logged[0].endswith('; payload=b\'{"n": "not\' (truncated)'), logged


class Card(BaseModel):
    number: int


class Payment(BaseModel):
    card: str


async def test_a_validation_error_raised_by_a_handler_never_quotes_its_input(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler validating data itself fails as a decode would: its log line, traceback and
    dead letter name the field and the problem, never the (possibly secret) value."""
    app = FastKafka(kafka_brokers={"localhost": {"url": "localhost", "port": 9092}})

    @app.consumes(dead_letter_topic="jobs_dlt")
    async def on_jobs(msg: Payment) -> None:
        try:
            Card.model_validate({"number": msg.card})
        except ValueError as error:
            raise RuntimeError("the job's card is not valid") from error

    async with Tester(app) as tester:
        with caplog.at_level(logging.DEBUG):
            await tester.to_jobs(Payment(card="4111-1111-1111-1111"))
            (letter,) = await tester.wait_for_dead_letters(on_jobs, timeout=TIMEOUT)
    logged = "\n".join(
        f"{record.getMessage()}\n{record.exc_text or ''}" for record in caplog.records
    )
    assert "number: Input should be a valid integer" in logged, logged
    assert (letter.error_type, letter.error_message) == (
        "RuntimeError",
        "the job's card is not valid",
    )
    assert "4111" not in logged, logged
    assert "4111" not in str(letter.headers), letter.headers
